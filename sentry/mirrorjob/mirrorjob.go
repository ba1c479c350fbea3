// Package mirrorjob is what the jobs that work a run mirror by mirror —
// the prime (package prime) and the sweep (package sweep) — do alike, so
// that each job keeps only what is its own.
//
//   - Planning and preparing: the run's request and parameters read back
//     (ReadRequest, ReadParams), the active mirrors it covers
//     (ActiveMirrors, ByID, IDs), the admin's switch noted
//     (NoteSwitchedOff).
//   - Working a mirror: how many requests it takes at once
//     (config.Config.MirrorConcurrency), each check handed to the row's
//     recorder and the observers (Record), its first failure kept
//     (KeepEarliest).
//   - Judging: the state machine of every mirror (Hysteresis), a change
//     of state announced (StateChanged), the mass-failure guard's share
//     (MaxDownFraction) and its activation (GuardHeld, GuardReason).
//   - Reporting: a finished run's rows read into its report's per-mirror
//     lines (Lines), no list null (NonNil).
//   - A mirror's own settings (settings.go): the rules the runs apply to
//     them, gathered (CheckSettings) for `sentry mirror set`, which
//     refuses what a run could not use.
package mirrorjob

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// ReadRequest decodes into v the request a run was started with: its
// parameters before it is planned (engine.Job.Plan).
func ReadRequest(run engine.Run, v any) error {
	if err := json.Unmarshal(run.Params, v); err != nil {
		return fmt.Errorf("read the request of run %d: %w", run.ID, err)
	}
	return nil
}

// ReadParams decodes into v the parameters a run was planned with
// (engine.Plan.Params), for Prepare and the run's report.
func ReadParams(run engine.Run, v any) error {
	if err := json.Unmarshal(run.Params, v); err != nil {
		return fmt.Errorf("read the parameters of run %d: %w", run.ID, err)
	}
	return nil
}

// ActiveMirrors are the active mirrors a run covers: those of names, all
// when names is empty (release.Covered says what is wrong otherwise).
func ActiveMirrors(ctx context.Context, st *store.Store, names []string) ([]store.Mirror, error) {
	mirrors, err := st.ActiveMirrors(ctx)
	if err != nil {
		return nil, err
	}
	return release.Covered(mirrors, names)
}

// ByID are mirrors by id: those a task works.
func ByID(mirrors []store.Mirror) map[int]store.Mirror {
	out := make(map[int]store.Mirror, len(mirrors))
	for _, m := range mirrors {
		out[m.ID] = m
	}
	return out
}

// IDs are the ids of mirrors, in their order: the rows of a plan.
func IDs(mirrors []store.Mirror) []int {
	out := make([]int, len(mirrors))
	for i, m := range mirrors {
		out[i] = m.ID
	}
	return out
}

// NoteSwitchedOff records the admin's switch as a run begins
// (store.Store.NoteSwitchedOff) and logs the mirrors newly seen switched
// off.
func NoteSwitchedOff(ctx context.Context, st *store.Store, log *slog.Logger) error {
	n, err := st.NoteSwitchedOff(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		log.Info("mirrors seen switched off: offered again only for files hashed after they return", "mirrors", n)
	}
	return nil
}

// Record hands c, a check of mirror m made for row, to the row's recorder
// (fenced by the row's lease) and, once the recorder took it, tells the
// observers. It reports whether the recorder took it.
func Record(ctx context.Context, row *engine.Row, obs observe.Observer, run engine.Run, m store.Mirror, c store.Check, res checks.Result) bool {
	if row.Record(ctx, c) != nil {
		return false
	}
	observe.Or(obs).CheckDone(observe.CheckEvent{RunKind: run.Kind, RunID: run.ID, Mirror: m.Name, MirrorID: m.ID,
		Path: c.Path, At: c.CheckedAt, Result: res.Kind, Hashed: res.Hashed, Sampled: res.Sampled > 0, Routine: c.Routine,
		BytesVerified: observe.VerifiedBytes(res)})
	return true
}

// KeepEarliest keeps in line the failure res of what (a file's path, or
// the mirror's URL), found at at, when it is the earliest of a mirror's
// failures yet (since holds when the earliest was found; zero: none yet):
// the first_failure of the mirror's line in a report, "KIND WHAT: DETAIL".
func KeepEarliest(since *time.Time, line *string, at time.Time, what string, res checks.Result) {
	if since.IsZero() || at.Before(*since) {
		*since = at
		*line = FailureLine(what, res)
	}
}

// FailureLine is how a report says what failed: "KIND WHAT: DETAIL".
func FailureLine(what string, res checks.Result) string {
	return fmt.Sprintf("%s %s: %s", res.Kind, what, res.Detail)
}

// Hysteresis is the state machine of every mirror (state.down_after,
// state.up_after).
func Hysteresis(cfg *config.Config) decide.Hysteresis {
	return decide.Hysteresis{DownAfter: cfg.State.DownAfter, UpAfter: cfg.State.UpAfter}
}

// StateChanged logs a change of mirror m's state that run wrote (u, its
// From set), with reason, and tells the observers.
func StateChanged(log *slog.Logger, obs observe.Observer, run engine.Run, m store.Mirror, u *store.StateUpdate, reason string) {
	log.Info("mirror state changed", "mirror", m.Name, "from", u.From, "to", u.State, "reason", reason)
	observe.Or(obs).StateChanged(observe.StateChangeEvent{At: u.At, RunID: run.ID, MirrorID: m.ID, Mirror: m.Name,
		BaseURL: safetext.URL(m.BaseURL), From: u.From, To: u.State, Reason: reason})
}

// MaxDownFraction is the mass-failure guard's share of mirrors failing at
// once (guard.max_down_fraction): of no use when the run was restricted
// to some mirrors (`--mirror`), where one dead mirror would be all of
// them; only an unreachable master holds the guard then.
func MaxDownFraction(cfg *config.Config, restricted bool) float64 {
	if restricted {
		return 1
	}
	return cfg.Guard.MaxDownFraction
}

// GuardReason is the reason of a run whose marking the guard held back,
// why being what held it.
func GuardReason(why string) string {
	return "mass-failure guard held back marking: " + why
}

// GuardHeld is the announcement of the guard's activation in run, held
// back from marking mirrors down for why (engine.Ending.After: told once,
// when the run's end is recorded).
func GuardHeld(obs observe.Observer, run engine.Run, mirrors int, why string) func() {
	return func() {
		observe.Or(obs).GuardHeld(observe.GuardEvent{At: time.Now(), RunID: run.ID, RunKind: run.Kind, Mirrors: mirrors, Reason: why})
	}
}

// Lines reads a finished run's rows into its report's per-mirror lines,
// in the rows' order. R is what the job leaves of a mirror in its row
// (engine.Result.Files, or the judgement's final word): line turns it
// into the mirror's line, ok false leaving the mirror out (gone since the
// run began). A row whose files were never done is undone's line, with
// the mirror's name from names ("mirror ID" when it has none).
func Lines[R, S any](rows []engine.WorkRow, names map[int]string, line func(R) (S, bool), undone func(id int, name string) S) ([]S, error) {
	out := []S{}
	for _, r := range rows {
		var res R
		done, err := r.DecodeFiles(&res)
		if err != nil {
			return nil, err
		}
		if !done {
			name := names[r.MirrorID]
			if name == "" {
				name = fmt.Sprintf("mirror %d", r.MirrorID)
			}
			out = append(out, undone(r.MirrorID, name))
			continue
		}
		if s, ok := line(res); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// NonNil is s, or an empty slice for nil: a report's lists are never
// null in its JSON.
func NonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
