-- Truth when releases and mirrors change.

-- Sweeps re-read each live release's manifest with a conditional GET.
ALTER TABLE sentry_releases
    ADD COLUMN manifest_etag text NOT NULL DEFAULT '',
    ADD COLUMN manifest_last_modified text NOT NULL DEFAULT '';

-- A file's hash before the manifest last changed it: a mirror whose bytes
-- match it serves the previous version (a stale cache).
ALTER TABLE sentry_release_files ADD COLUMN previous_hash text;

-- How to refresh a pull-through cache that serves an earlier version:
-- a request of purge_method to purge_url ({url}: the file's URL on the
-- mirror; {path}: its path under the mirror's base URL).
ALTER TABLE sentry_mirror_settings
    ADD COLUMN purge_method text CHECK (purge_method IS NULL OR purge_method ~ '^[A-Z]{3,16}$'),
    ADD COLUMN purge_url text,
    ADD CONSTRAINT sentry_mirror_settings_purge_check CHECK ((purge_method IS NULL) = (purge_url IS NULL));

-- When the mirror stopped being offered (down, or switched off by the
-- admin): it is offered again only for files hashed right since.
ALTER TABLE sentry_mirror_state ADD COLUMN suspended_at timestamptz;
-- The admin's switch as sentry last saw it: a mirror seen switched off is
-- suspended from then on (suspended_at), until its files are hashed again.
ALTER TABLE sentry_mirror_state ADD COLUMN switched_off boolean NOT NULL DEFAULT false;

-- Locations whose files left their manifest: off on every mirror, and
-- counted against none (a mirror is not degraded by them).
CREATE TABLE sentry_withdrawn_locations (
    location_id int PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now()
);

-- A check that changes a file's state updates its row in place: room on
-- each page lets PostgreSQL do it without new index entries (a HOT
-- update). Pages written from now on keep the room.
ALTER TABLE sentry_file_state SET (fillfactor = 70);
