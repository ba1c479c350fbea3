-- The bouncer tables of docs/CONTRACTS.md, section 1 (The bouncer tables),
-- created only where missing.
-- Existing tables keep every row and every column an admin added; columns
-- and the unique key sentry relies on are added when an older schema lacks
-- them. Nothing is dropped or rewritten.

CREATE TABLE IF NOT EXISTS mirror_mirrors (
    id serial PRIMARY KEY,
    name varchar(64) UNIQUE NOT NULL,
    baseurl varchar(255) NOT NULL,
    rating int NOT NULL DEFAULT 0,
    active boolean NOT NULL DEFAULT true,
    count bigint NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS mirror_products (
    id serial PRIMARY KEY,
    name varchar(255) UNIQUE NOT NULL,
    priority int NOT NULL DEFAULT 1,
    count bigint NOT NULL DEFAULT 0,
    active boolean NOT NULL DEFAULT true,
    checknow boolean NOT NULL DEFAULT true,
    ssl_only boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS mirror_os (
    id serial PRIMARY KEY,
    name varchar(32) UNIQUE NOT NULL,
    priority int NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS mirror_locations (
    id serial PRIMARY KEY,
    product_id int NOT NULL REFERENCES mirror_products,
    os_id int NOT NULL REFERENCES mirror_os,
    path varchar(255) NOT NULL
);

CREATE TABLE IF NOT EXISTS mirror_product_langs (
    id serial PRIMARY KEY,
    product_id int REFERENCES mirror_products,
    language varchar(30),
    UNIQUE (product_id, language)
);

CREATE TABLE IF NOT EXISTS mirror_location_mirror_map (
    id bigserial PRIMARY KEY,
    location_id int NOT NULL,
    mirror_id int NOT NULL,
    active boolean NOT NULL DEFAULT false,
    healthy boolean NOT NULL DEFAULT true,
    UNIQUE (location_id, mirror_id)
);

CREATE TABLE IF NOT EXISTS mirror_lmm_lang_exceptions (
    id serial PRIMARY KEY,
    location_mirror_map_id bigint,
    language varchar(30)
);

CREATE TABLE IF NOT EXISTS mirror_aliases (
    id serial PRIMARY KEY,
    alias varchar(255) UNIQUE,
    related_product varchar(255)
);

CREATE TABLE IF NOT EXISTS geoip_mirror_region_map (
    id serial PRIMARY KEY,
    mirror_id int,
    region_id int,
    UNIQUE (mirror_id, region_id)
);

CREATE TABLE IF NOT EXISTS sentry_log (
    log_date timestamptz NOT NULL,
    check_time timestamptz NOT NULL DEFAULT now(),
    mirror_id int NOT NULL,
    mirror_active boolean NOT NULL,
    mirror_rating int NOT NULL,
    reason text NOT NULL,
    UNIQUE (mirror_id, log_date)
);

-- Older bouncer databases predate the healthy flag.
ALTER TABLE mirror_location_mirror_map ADD COLUMN IF NOT EXISTS healthy boolean NOT NULL DEFAULT true;

-- sentry upserts on (location_id, mirror_id): make sure a unique index on
-- exactly those columns exists, whatever the table's origin. (If an old
-- table holds duplicate pairs this fails, and the migration with it, naming
-- the index: the admin must resolve the duplicates first.)
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM pg_index i
        JOIN pg_class t ON t.oid = i.indrelid
        WHERE t.relname = 'mirror_location_mirror_map'
          AND t.relnamespace = to_regnamespace(current_schema())
          AND i.indisunique
          AND i.indpred IS NULL
          AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
               FROM unnest(i.indkey) k
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k)
              = ARRAY['location_id', 'mirror_id']
    ) THEN
        CREATE UNIQUE INDEX mirror_location_mirror_map_location_mirror_key
            ON mirror_location_mirror_map (location_id, mirror_id);
    END IF;
END
$$;

-- The redirector's lookup and sentry's per-mirror marking.
CREATE INDEX IF NOT EXISTS mirror_location_mirror_map_mirror_idx ON mirror_location_mirror_map (mirror_id);
CREATE INDEX IF NOT EXISTS mirror_locations_product_idx ON mirror_locations (product_id);
