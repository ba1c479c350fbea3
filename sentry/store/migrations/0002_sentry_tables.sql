-- sentry's own tables, all under the prefix sentry_.

-- Per-mirror settings bouncer has no column for (docs/CONTRACTS.md, section 3
-- (sentry's own per-mirror settings)).
CREATE TABLE IF NOT EXISTS sentry_mirror_settings (
    mirror_id int PRIMARY KEY REFERENCES mirror_mirrors ON DELETE CASCADE,
    prime_mode text NOT NULL DEFAULT 'pull' CHECK (prime_mode IN ('pull', 'trigger', 'passive')),
    trigger_url text,
    max_concurrency int CHECK (max_concurrency IS NULL OR max_concurrency BETWEEN 1 AND 64),
    CHECK (prime_mode <> 'trigger' OR trigger_url IS NOT NULL)
);

-- A release sentry knows the manifest of, and the manifest's files.
CREATE TABLE sentry_releases (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    manifest_url text NOT NULL,
    manifest_sha256 text NOT NULL,
    file_count int NOT NULL,
    total_bytes bigint NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sentry_release_files (
    release_id bigint NOT NULL REFERENCES sentry_releases ON DELETE CASCADE,
    path text NOT NULL,
    size bigint NOT NULL CHECK (size >= 0),
    algo text NOT NULL CHECK (algo IN ('sha256', 'sha512')),
    hash text NOT NULL,
    PRIMARY KEY (release_id, path)
);

-- One row per prime or sweep.
CREATE TABLE sentry_runs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('prime', 'sweep', 'deep_sweep')),
    release_id bigint REFERENCES sentry_releases ON DELETE SET NULL,
    vantage text NOT NULL,
    host text NOT NULL,
    pid int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome text NOT NULL DEFAULT 'running'
        CHECK (outcome IN ('running', 'completed', 'guarded', 'interrupted', 'failed')),
    reason text NOT NULL DEFAULT ''
);
CREATE INDEX sentry_runs_started_idx ON sentry_runs (started_at DESC);

-- Every check sentry made. result is 'ok', 'unchanged' or a failure kind of
-- docs/CONTRACTS.md, section 5 (Failure kinds). path is relative to the
-- release directory; '' for a check of the mirror itself.
CREATE TABLE sentry_checks (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES sentry_runs ON DELETE CASCADE,
    mirror_id int NOT NULL,
    release_id bigint,
    path text NOT NULL,
    checked_at timestamptz NOT NULL,
    vantage text NOT NULL,
    method text NOT NULL,
    result text NOT NULL CHECK (result IN ('ok', 'unchanged', 'not_found', 'forbidden', 'size_mismatch',
        'checksum_mismatch', 'timeout', 'connect', 'dns', 'tls', 'http_status', 'redirect', 'too_large',
        'truncated', 'not_primed', 'internal')),
    status int,
    bytes bigint,
    hashed boolean NOT NULL DEFAULT false,
    duration_ms int NOT NULL DEFAULT 0,
    attempts int NOT NULL DEFAULT 1,
    cache_status text NOT NULL DEFAULT '',
    detail text NOT NULL DEFAULT ''
);
CREATE INDEX sentry_checks_mirror_time_idx ON sentry_checks (mirror_id, checked_at DESC);
CREATE INDEX sentry_checks_run_idx ON sentry_checks (run_id);
CREATE INDEX sentry_checks_time_idx ON sentry_checks (checked_at);

-- The last known fact about each (mirror, release file): what resume, deep
-- sweep rotation and reports read without scanning every check.
CREATE TABLE sentry_file_state (
    mirror_id int NOT NULL REFERENCES mirror_mirrors ON DELETE CASCADE,
    release_id bigint NOT NULL REFERENCES sentry_releases ON DELETE CASCADE,
    path text NOT NULL,
    result text NOT NULL,
    last_checked_at timestamptz NOT NULL,
    verified_at timestamptz,
    hashed_at timestamptz,
    failing_since timestamptz,
    size bigint,
    etag text NOT NULL DEFAULT '',
    last_modified text NOT NULL DEFAULT '',
    detail text NOT NULL DEFAULT '',
    PRIMARY KEY (mirror_id, release_id, path)
);
CREATE INDEX sentry_file_state_release_idx ON sentry_file_state (release_id, path);

-- Each mirror's state as sweeps see it (hysteresis), and its history.
CREATE TABLE sentry_mirror_state (
    mirror_id int PRIMARY KEY REFERENCES mirror_mirrors ON DELETE CASCADE,
    state text NOT NULL DEFAULT 'up' CHECK (state IN ('up', 'down')),
    since timestamptz NOT NULL DEFAULT now(),
    fail_streak int NOT NULL DEFAULT 0,
    ok_streak int NOT NULL DEFAULT 0,
    last_check timestamptz,
    last_reason text NOT NULL DEFAULT ''
);

CREATE TABLE sentry_state_changes (
    id bigserial PRIMARY KEY,
    mirror_id int NOT NULL,
    run_id bigint,
    at timestamptz NOT NULL DEFAULT now(),
    from_state text NOT NULL,
    to_state text NOT NULL,
    reason text NOT NULL
);
CREATE INDEX sentry_state_changes_mirror_idx ON sentry_state_changes (mirror_id, at DESC);
