-- The run engine knows no job kind: how a run shares the work with the
-- others is declared by its job when it registers (engine.Kind), and
-- written on the run when it is recorded. The engine's statements read
-- these columns, never sentry_runs.kind.
--
-- priority: rows of runs of higher priority are claimed first.
-- yields: a row of the run is not claimed while its mirror has a row of a
-- running run of higher priority waiting to be claimed.
-- exclusive_group: the scheduled runs (slot set) of one group run one at a
-- time; NULL: none.
--
-- Existing runs get what the engine hard-coded for their kinds before: a
-- prime's rows first (priority 10, as sentry.NewEngine declares it), and
-- sweeps, light or deep, yielding to them and scheduled one at a time
-- (group 'sweep').
ALTER TABLE sentry_runs
    ADD COLUMN priority int NOT NULL DEFAULT 0,
    ADD COLUMN yields boolean NOT NULL DEFAULT false,
    ADD COLUMN exclusive_group text CHECK (exclusive_group <> '');
UPDATE sentry_runs SET priority = 10 WHERE kind = 'prime';
UPDATE sentry_runs SET yields = true, exclusive_group = 'sweep' WHERE kind IN ('sweep', 'deep_sweep');

-- Sentries older than this migration, still running while it is applied
-- (a rolling upgrade: RequireSchema stops an older binary from starting
-- afterwards), record runs without these columns. Such a run gets, from
-- its kind, what those sentries' engine hard-coded — so that a newer
-- sentry neither claims a sweep's row ahead of an older sentry's prime nor
-- starts a scheduled sweep beside an older sentry's. A newer sentry always
-- writes the columns, so the columns have no defaults and the trigger
-- fires only for the older ones. It can be dropped by a later migration.
ALTER TABLE sentry_runs
    ALTER COLUMN priority DROP DEFAULT,
    ALTER COLUMN yields DROP DEFAULT;
CREATE FUNCTION sentry_runs_older_sentry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.priority := CASE WHEN NEW.kind = 'prime' THEN 10 ELSE 0 END;
    NEW.yields := NEW.kind IN ('sweep', 'deep_sweep');
    NEW.exclusive_group := CASE WHEN NEW.kind IN ('sweep', 'deep_sweep') THEN 'sweep' END;
    RETURN NEW;
END $$;
CREATE TRIGGER sentry_runs_older_sentry BEFORE INSERT ON sentry_runs
    FOR EACH ROW WHEN (NEW.priority IS NULL) EXECUTE FUNCTION sentry_runs_older_sentry();

-- A run's kind is any its sentries register: adding a job needs no
-- migration. A sentry claims the rows and judgings only of the kinds it
-- registers, and leaves the others to the sentries that do.
ALTER TABLE sentry_runs DROP CONSTRAINT sentry_runs_kind_check,
    ADD CONSTRAINT sentry_runs_kind_check CHECK (kind <> '');
