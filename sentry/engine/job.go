package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mirrorsentry/sentry/sentry/record"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Kind is a job as it registers with the engine (Options.Jobs, by the
// kind of its runs, sentry_runs.kind): the job, and how its runs share
// the work with the runs of other kinds. The engine writes these
// properties on each run when it records it, and its statements read
// them there: it never asks what a kind is called.
type Kind struct {
	Job Job
	// Priority orders the claims: rows of runs of a higher priority are
	// claimed before those of a lower one (sentry_runs.priority).
	Priority int
	// Yield: a row of this kind's run is not claimed while its mirror
	// has a row of a running run of higher priority waiting to be claimed
	// (even one another claimer is taking right now), so that the higher
	// run is not kept waiting behind this one (sentry_runs.yields).
	Yield bool
	// Group, when set, names the kinds whose scheduled runs
	// (Request.Slot) run one at a time: a request for a slot while a
	// scheduled run of the group runs fails with a GroupBusyError, unless
	// it queues (Request.Queue) (sentry_runs.exclusive_group).
	Group string
	// Busy, when set, is the error a scheduled request of this kind fails
	// with while its group is busy, wrapped in the GroupBusyError (which
	// then reads as Busy, naming the busy run): the job's own sentinel
	// for its callers. It needs a Group.
	Busy error
}

// Job is one kind of run — a prime, a sweep — as the engine drives it.
// The engine knows jobs only through this interface and the properties
// they register (Kind); it never asks what a job is.
type Job interface {
	// Plan decides a new run's work. It is called once, by the process
	// that started the run, after the run is recorded (run.Params holds
	// Request.Params); an error ends the run as failed.
	Plan(ctx context.Context, run Run) (Plan, error)
	// Prepare builds what this process needs to work rows of a run, and
	// to judge it, from the run's recorded parameters (Plan.Params). It
	// is called once per run and process, before its first row.
	Prepare(ctx context.Context, run Run) (Task, error)
	// Interrupted is the reason recorded when the command that started
	// a run is stopped before the run ends, with done of total rows done.
	Interrupted(cause error, done, total int) string
}

// Plan is a run's work, as its Job decided it.
type Plan struct {
	// Params is what every process needs to do its part, stored with the
	// run as JSON (Run.Params in Prepare).
	Params any
	// ReleaseID is the release the run is about, 0 for none.
	ReleaseID int64
	// Mirrors get one work row each, claimed in this order.
	Mirrors []int
	// Reach: every working vantage point checks each mirror's
	// reachability (a sweep); otherwise a row is worked from one place.
	Reach bool
	// Task, when set, is what the planning process prepared to work the
	// run, so that it need not read the run back (Prepare): it starts at
	// once, and keeps working through a database outage that begins
	// right after.
	Task Task
}

// Task is what one process prepared to do a run's rows and judge it.
type Task interface {
	// Work does this process's part of one claimed row: the mirror's
	// reachability from this vantage point (row.Reach) and, when still
	// to do, its files (row.Files). ok false means it could not finish
	// (stopping, or sentry's own trouble): the row is given back for
	// another to do. ctx ends when the row is no longer this process's
	// (taken over, its lease lapsing, or shutdown); every request for
	// the row must be made with it.
	Work(ctx context.Context, row *Row) (res Result, ok bool)
	// Judge is the run's last step, done once, by one process, when every
	// row is done: from what the rows found it decides and writes the
	// marks (each write fenced by j.Fence) and returns how the run ends.
	Judge(ctx context.Context, j *Judgement) (Ending, error)
}

// Run is a run of a job (a prime, a sweep) as recorded in sentry_runs.
type Run struct {
	ID        int64
	Kind      string
	StartedAt time.Time
	// Params is the run's parameters as JSON: Request.Params until the
	// run is planned, Plan.Params after.
	Params json.RawMessage
}

// Row is one claimed work row: one mirror of one run, held by this process
// under a lease until Work returns.
type Row struct {
	Run      Run
	MirrorID int
	// Reach: this vantage point has still to check the mirror's
	// reachability. Files: the mirror's files are still to be done.
	Reach, Files bool
	// Claims counts how often the row was claimed, this time included:
	// more than one means an earlier holder gave it back or died. It is
	// the row's fence token.
	Claims int

	fence rowFence
	// fenced is fence as the store.Fence every check carries, made once:
	// not an allocation per check.
	fenced store.Fence
	rec    *record.Recorder
	lease  time.Duration
	// renewed is when the lease was last renewed (claimed, or renewed by a
	// heartbeat), as mono() at the moment the request was sent.
	renewed atomic.Int64
	cancel  context.CancelFunc
	// finishing: Work returned, or the watchdog stopped the work; the row
	// is being completed or given back. cancel and finishing are guarded
	// by the worker's holdings.
	finishing bool
}

// Record hands a check made for the row to this process's recorder,
// fenced: it is written only while the row is still this process's. It
// sets the check's run and mirror.
func (r *Row) Record(ctx context.Context, c store.Check) error {
	c.RunID, c.MirrorID, c.Fence = r.Run.ID, r.MirrorID, r.fenced
	return r.rec.Add(ctx, c)
}

// Fence is the row's lease, for writes made on its behalf (marks): they
// are written only while the row is still this process's.
func (r *Row) Fence() store.Fence { return r.fenced }

// Result is what Work found of a row.
type Result struct {
	// Verdict, when set, is this vantage point's reachability verdict,
	// kept per vantage point on the row for the judge (Reach rows).
	Verdict any
	// Unreachable: the mirror could not be reached from this vantage
	// point, so its files are left to another.
	Unreachable bool
	// Files, when set, is the outcome of the mirror's files, which are
	// then done.
	Files any
}

// Judgement is a run being judged: the work rows as done, and the fence of
// the judge's writes.
type Judgement struct {
	Run  Run
	Rows []WorkRow

	fence  judgeFence
	engine *Engine
}

// Fence is the judging's lease: marks written under it are written only
// while this process still judges the run.
func (j *Judgement) Fence() store.Fence { return j.fence }

// VantagesSeen returns the vantage points that checked the mirrors'
// reachability in runs (sweeps: Plan.Reach) started within the last
// period, or belong to daemons seen within it: the electorate of a
// default quorum.
func (j *Judgement) VantagesSeen(ctx context.Context, period time.Duration) ([]string, error) {
	return j.engine.vantagesSeen(ctx, period)
}

// WorkRow is a work row as the judge and the run's report read it.
type WorkRow struct {
	MirrorID int
	Vantages []string
	NotFrom  []string
	DoneBy   string
	Claims   int
	// Verdicts maps each vantage point to its verdict (JSON object).
	Verdicts json.RawMessage
	// Files is Result.Files as JSON, nil when the files were not done.
	Files json.RawMessage
}

// Ending is how a judged run ends.
type Ending struct {
	Outcome, Reason string
	// Files, when set, replaces the Files of the rows it names (by mirror
	// id): the judge's final word on each mirror, read by the report.
	Files map[int]any
	// After, when set, is called once the end is recorded by this
	// judgement (not when another sentry ended the run first): what is to
	// be announced once, such as a guard's activation.
	After func()
}

// DecodeFiles decodes the row's Files into v and reports whether the
// row's files were done (false: nothing recorded, v untouched).
func (r WorkRow) DecodeFiles(v any) (bool, error) {
	if r.Files == nil {
		return false, nil
	}
	if err := json.Unmarshal(r.Files, v); err != nil {
		return false, fmt.Errorf("read what was found of mirror %d: %w", r.MirrorID, err)
	}
	return true, nil
}
