-- Verifying a release without downloading it from every mirror: block
-- digests of the master's copy, checks that read some blocks of a file,
-- and what priming learned of each pull-through cache.

-- The master's copy of a file, digested once: the SHA-256 of every
-- block_size-byte block in order (the last may be shorter), 32 bytes
-- each. Keyed by the file's contents (the manifest's algo and hash, and
-- its size) and the block size, so that a re-run, a resumed prime or
-- another release holding the same bytes reads nothing again.
CREATE TABLE sentry_block_digests (
    algo text NOT NULL,
    hash text NOT NULL,
    size bigint NOT NULL CHECK (size >= 0),
    block_size int NOT NULL CHECK (block_size > 0),
    digests bytea NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (algo, hash, size, block_size),
    CHECK (length(digests) = 32 * ((size + block_size - 1) / block_size))
);

-- How a check read a file: sample_blocks of its file_blocks blocks were
-- compared with the master's digests (NULL: not sampled; hashed says
-- whether the whole body was hashed).
ALTER TABLE sentry_checks ADD COLUMN sample_blocks int, ADD COLUMN file_blocks int;

-- How a pair's last verification was made: 'full' (hashed in full) or
-- 'sampled'. hashed_at stays the time of the last full hash, which deep
-- sweeps rotate on: a pair verified by sampling only is one never hashed.
ALTER TABLE sentry_file_state ADD COLUMN verified_by text NOT NULL DEFAULT ''
    CHECK (verified_by IN ('', 'full', 'sampled'));
UPDATE sentry_file_state SET verified_by = 'full' WHERE verified_at IS NOT NULL;

-- A release's uptake counts sampled verifications too.
DROP INDEX sentry_checks_release_verified_idx;
CREATE INDEX sentry_checks_release_verified_idx ON sentry_checks (release_id, mirror_id, path, checked_at)
    WHERE result = 'ok' AND (hashed OR sample_blocks IS NOT NULL);

-- How a pull-through cache is primed, learned by the first prime that
-- tried: 'range' (a one-byte range makes it fetch and keep the whole file:
-- its next answer was a hit) or 'get' (a full GET). Delete a row to have
-- sentry learn again.
CREATE TABLE sentry_mirror_priming (
    mirror_id int PRIMARY KEY REFERENCES mirror_mirrors ON DELETE CASCADE,
    prime_by text NOT NULL CHECK (prime_by IN ('range', 'get')),
    learned_at timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL DEFAULT ''
);
