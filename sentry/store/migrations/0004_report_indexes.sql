-- Reports: a release's uptake reads the first verification of each
-- (mirror, file) of the release without scanning every check.
CREATE INDEX sentry_checks_release_verified_idx ON sentry_checks (release_id, mirror_id, path, checked_at)
    WHERE result = 'ok' AND hashed;
