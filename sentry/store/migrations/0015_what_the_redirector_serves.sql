-- The mirrors sentry has verified at least once: the first time the bytes
-- of one of their files were verified there (hashed in full, or sampled).
-- On a mirror without a row, sentry has vouched for nothing: the rows of
-- mirror_location_mirror_map it finds active there were left by an
-- earlier checker, and its first check of the mirror decides them
-- (decide.Vouch): not verified, they are taken off. A row is written once,
-- by the marking of the first run that verified a file there.
CREATE TABLE sentry_mirror_verified (
    mirror_id int PRIMARY KEY REFERENCES mirror_mirrors ON DELETE CASCADE,
    first_verified_at timestamptz NOT NULL
);

-- What an earlier sentry verified before this table existed: the file
-- states (a verification, or a full hash, still on record) and the checks
-- kept (ok and hashed, or sampled).
INSERT INTO sentry_mirror_verified (mirror_id, first_verified_at)
SELECT v.mirror_id, min(v.at)
FROM (
    SELECT mirror_id, least(verified_at, hashed_at) AS at FROM sentry_file_state
    WHERE verified_at IS NOT NULL OR hashed_at IS NOT NULL
    UNION ALL
    SELECT mirror_id, min(checked_at) FROM sentry_checks
    WHERE result = 'ok' AND (hashed OR sample_blocks IS NOT NULL)
    GROUP BY mirror_id
) v
JOIN mirror_mirrors m ON m.id = v.mirror_id
GROUP BY v.mirror_id;

-- The bouncer products of each release (those its releases.products
-- patterns name), as the last prime or sweep found them: the views count
-- a release's uptake by the schemes its products need (ssl_only) without
-- the configuration. Written only when they change.
ALTER TABLE sentry_releases ADD COLUMN product_ids int[] NOT NULL DEFAULT '{}';
