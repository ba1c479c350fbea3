-- Reports and the status page count checks by the hour instead of scanning
-- sentry_checks (millions of rows a day at a few hundred mirrors).
CREATE TABLE sentry_check_hourly (
    mirror_id int NOT NULL,
    hour timestamptz NOT NULL, -- the UTC hour the checks were made in
    vantage text NOT NULL,
    result text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (mirror_id, hour, vantage, result)
);
CREATE INDEX sentry_check_hourly_hour_idx ON sentry_check_hourly (hour);

INSERT INTO sentry_check_hourly (mirror_id, hour, vantage, result, n)
SELECT mirror_id, date_trunc('hour', checked_at, 'UTC'), vantage, result, count(*)
FROM sentry_checks GROUP BY 1, 2, 3, 4;

-- A mirror's last failure without walking its good checks.
CREATE INDEX sentry_checks_failures_idx ON sentry_checks (mirror_id, checked_at DESC)
    WHERE result NOT IN ('ok', 'unchanged');
