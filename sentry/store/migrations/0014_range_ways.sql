-- How a mirror's server answers a request for several ranges, learned by
-- sampled checks: a property of the server, never a failure of the
-- mirror, kept so that the next check asks the way that works.
-- max_ranges is the most ranges one request asks for (lighttpd answers
-- only the first 10 of a request: 10; Varnish answers 416 to more than
-- one: 1); in_full says the server honours no range, and files are read
-- in full. No row: nothing learned, every range in one request. A row is
-- only ever made stricter; delete it to have sentry learn again (after
-- the server's configuration changed, say).
CREATE TABLE sentry_mirror_ranges (
    mirror_id int PRIMARY KEY REFERENCES mirror_mirrors ON DELETE CASCADE,
    max_ranges int CHECK (max_ranges >= 1),
    in_full boolean NOT NULL DEFAULT false,
    learned_at timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL DEFAULT '',
    CHECK (in_full = (max_ranges IS NULL))
);
