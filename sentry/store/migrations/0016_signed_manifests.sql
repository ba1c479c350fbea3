-- Who signed each release's manifest (releases.signature), as sentry
-- verified it when it recorded the manifest: the primary key's
-- fingerprint, the subkey's when a subkey signed, the key's primary user
-- id and the signature's time. Empty (and signed_at NULL) for a manifest
-- recorded without a signature.
ALTER TABLE sentry_releases
    ADD COLUMN signer_fingerprint text NOT NULL DEFAULT '',
    ADD COLUMN signer_key text NOT NULL DEFAULT '',
    ADD COLUMN signer_uid text NOT NULL DEFAULT '',
    ADD COLUMN signed_at timestamptz;
