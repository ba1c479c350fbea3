package sentry

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// quorumWindow is how far back vantage points count towards the default
// quorum: those seen in the last hour.
const quorumWindow = time.Hour

// currentQuorum is state.quorum, or a majority of the vantage points seen
// in the last hour (store.VantagesSeen) together with those that took
// part in this run.
func currentQuorum(ctx context.Context, d *Deps, took map[string]bool) (quorum, error) {
	seen, err := d.Store.VantagesSeen(ctx, quorumWindow)
	if err != nil {
		return quorum{}, err
	}
	all := map[string]bool{}
	maps.Copy(all, took)
	for _, v := range seen {
		all[v] = true
	}
	q := quorum{need: d.Config.State.Quorum, seen: max(len(all), 1)}
	if q.need == 0 {
		q.need = q.seen/2 + 1
	}
	return q, nil
}

// judgeSweep is a sweep's last step, done by one instance once every work
// row is done: it reads what every vantage point found of every mirror,
// applies the quorum, the guard and hysteresis, marks the bouncer tables,
// writes each mirror's final sums back to its row and ends the run.
func judgeSweep(ctx context.Context, w *Worker, j store.JudgeClaim) error {
	d := w.d
	var p sweepParams
	if err := json.Unmarshal(j.Params, &p); err != nil {
		return fmt.Errorf("read the parameters of run %d: %w", j.ID, err)
	}
	rels, err := d.Store.KnownReleases(ctx)
	if err != nil {
		return err
	}
	mirrors, err := d.Store.ActiveMirrors(ctx)
	if err != nil {
		return err
	}
	byID := make(map[int]store.Mirror, len(mirrors))
	for _, m := range mirrors {
		byID[m.ID] = m
	}
	states, err := d.Store.MirrorStates(ctx)
	if err != nil {
		return err
	}
	run := store.Run{ID: j.ID, Kind: j.Kind, StartedAt: j.StartedAt}
	sw := &sweepRun{d: d, log: w.log.With("run", j.ID, "kind", j.Kind), run: run, deep: p.Deep, set: &sweepSet{}}
	for _, r := range rels {
		if slices.Contains(p.Releases, r.ID) {
			sw.set.releases = append(sw.set.releases, r)
		}
	}
	var all []*mirrorSweep
	took := map[string]bool{}
	err = d.Store.WorkRows(ctx, j.ID, func(r store.WorkRow) error {
		m, ok := byID[r.MirrorID]
		if !ok {
			return nil // deactivated since the run began
		}
		st, ok := states[m.ID]
		if !ok {
			st = store.MirrorState{MirrorID: m.ID, State: store.StateUp}
		}
		ms := &mirrorSweep{m: m, prev: st, verdicts: map[string]vantageVerdict{},
			sums: MirrorSweepSums{ID: m.ID, Name: m.Name, Failures: map[checks.Kind]int{}}}
		if err := json.Unmarshal(r.Verdicts, &ms.verdicts); err != nil {
			return fmt.Errorf("read the verdicts on mirror %s: %w", m.Name, err)
		}
		for v := range ms.verdicts {
			took[v] = true
		}
		switch {
		case r.Result != nil:
			var res sweepRowResult
			if err := json.Unmarshal(r.Result, &res); err != nil {
				return fmt.Errorf("read the sweep of mirror %s: %w", m.Name, err)
			}
			if res.Gone {
				return nil
			}
			ms.sums, ms.good, ms.missing = res.Sums, res.Good, res.Missing
			if ms.sums.Failures == nil {
				ms.sums.Failures = map[checks.Kind]int{}
			}
		case len(ms.verdicts) > 0:
			// No vantage point reached it: its files were not checked.
			vs := make([]string, 0, len(ms.verdicts))
			for v := range ms.verdicts {
				vs = append(vs, v)
			}
			sort.Strings(vs)
			vd := ms.verdicts[vs[0]]
			ms.sums.FirstFailure = vd.Why
			if vd.Kind != "" {
				ms.sums.Failures[checks.Kind(vd.Kind)]++
			}
		default:
			ms.sums.interrupted = true
			ms.sums.Note = "not checked: every vantage point that was to check it left"
		}
		all = append(all, ms)
		return nil
	})
	if err != nil {
		return err
	}
	q, err := currentQuorum(ctx, d, took)
	if err != nil {
		return err
	}
	outcome, reason := sw.judge(ctx, all, q)
	results := make(map[int]any, len(all))
	for _, ms := range all {
		results[ms.m.ID] = sweepRowResult{Sums: ms.sums}
	}
	if err := d.Store.SetWorkResults(ctx, j.ID, results); err != nil {
		return err
	}
	if err := endRunRetrying(ctx, d, j.ID, outcome, reason); err != nil {
		return err
	}
	d.observer().RunFinished(RunEvent{RunID: j.ID, Kind: j.Kind, Outcome: outcome, Started: j.StartedAt, Finished: time.Now()})
	sw.log.Info("sweep judged", "outcome", outcome, "reason", reason, "mirrors", len(all),
		"quorum", q.need, "vantage_points", q.seen)
	return nil
}

// endRunRetrying records a run's end (once: another instance may have
// ended it first), retrying while the database is away until ctx ends: a
// run must not stay "running" because of a passing outage.
func endRunRetrying(ctx context.Context, d *Deps, runID int64, outcome, reason string) error {
	return retryDB(ctx, d.Logger.With("run", runID), "recording the end of the run", 0, func() error {
		_, err := d.Store.EndRun(ctx, runID, outcome, reason)
		return err
	})
}
