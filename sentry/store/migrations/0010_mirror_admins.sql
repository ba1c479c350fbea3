-- Mirror admins in the loop: certificates, address families, contacts and
-- e-mail, maintenance windows.

-- The mirror admin's e-mail address: state changes and certificate
-- warnings are mailed there (notify.smtp). One address, no display name.
ALTER TABLE sentry_mirror_settings ADD COLUMN contact text
    CHECK (contact IS NULL OR (length(contact) <= 254 AND contact ~ '^[^@[:space:][:cntrl:]<>(),;:"]+@[^@[:space:][:cntrl:]<>(),;:"]+$'));

-- The certificate an https mirror showed at its last sweep: written only
-- when it changes (another certificate, or another verdict on it), so a
-- sweep that finds the same certificate writes nothing. error is why it
-- failed verification ('' when it passed); seen_at when this certificate
-- (and verdict) was first seen; warned_at when sentry raised its expiry
-- warning (checks.tls_expiry_warning), once per certificate.
CREATE TABLE sentry_mirror_tls (
    mirror_id int PRIMARY KEY REFERENCES mirror_mirrors ON DELETE CASCADE,
    host text NOT NULL,
    fingerprint text NOT NULL,
    subject text NOT NULL,
    issuer text NOT NULL,
    names text[] NOT NULL DEFAULT '{}',
    not_before timestamptz NOT NULL,
    not_after timestamptz NOT NULL,
    error text NOT NULL DEFAULT '',
    seen_at timestamptz NOT NULL,
    warned_at timestamptz
);

-- The address family a check was made over ('': the system chose).
ALTER TABLE sentry_checks ADD COLUMN family text NOT NULL DEFAULT ''
    CHECK (family IN ('', 'ipv4', 'ipv6'));

-- broken_families: the address families a mirror failed over at its last
-- sweep while it answered over another (state.family_policy decides what
-- that does). A maintenance window suspends the mirror's offer too
-- (sentry_mirror_state.suspended_at, migration 0009).
ALTER TABLE sentry_mirror_state
    ADD COLUMN broken_families text[] NOT NULL DEFAULT '{}';

-- A mirror's maintenance window (`sentry mirror maintenance`): from since
-- until until, its locations are unhealthy, its failures do not count and
-- nothing is announced. One row per mirror: a new window replaces it.
CREATE TABLE sentry_maintenance (
    mirror_id int PRIMARY KEY REFERENCES mirror_mirrors ON DELETE CASCADE,
    since timestamptz NOT NULL,
    until timestamptz NOT NULL,
    reason text NOT NULL DEFAULT '',
    CHECK (until >= since)
);

-- Notices mailed (or being mailed): one per (kind, key), whichever sentry
-- sends it, so a state change is mailed once across restarts and several
-- sentries. A sender claims a notice for a while (claimed_until), and a
-- failed attempt waits until next_at.
CREATE TABLE sentry_notices (
    kind text NOT NULL CHECK (kind IN ('state', 'tls', 'digest')),
    key text NOT NULL,
    mirror_id int,
    created_at timestamptz NOT NULL DEFAULT now(),
    claimed_by text,
    claimed_until timestamptz,
    attempts int NOT NULL DEFAULT 0,
    next_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    gave_up_at timestamptz,
    last_error text NOT NULL DEFAULT '',
    PRIMARY KEY (kind, key)
);
CREATE INDEX sentry_notices_open_idx ON sentry_notices (next_at) WHERE sent_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX sentry_state_changes_at_idx ON sentry_state_changes (at);
