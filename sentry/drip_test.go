package sentry_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/faultmirror"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestDripEndsWithinItsBound: the drip of issue 26 — 1,100 bytes every
// 1.5 s, which no idle timer of checks.body_idle_timeout 3s ever fires on —
// is a timeout within the bound docs/FAULTS.md promises (the headers'
// timeouts, then size / checks.min_rate + body_idle_timeout), with its
// rate in the detail ("2200 bytes in 3s (733 B/s)"), in a prime and in a
// deep sweep. Without the minimum
// rate each of these checks takes 95 s, and is ok.
func TestDripEndsWithinItsBound(t *testing.T) {
	t.Parallel()
	w := world.New(t, &world.Options{Config: func(c *config.Config) {
		c.Checks.BodyIdleTimeout = config.Duration(3 * time.Second) // min_rate: the default
	}})
	w.Static(t, "good1")
	w.Static(t, "good2")
	fm, err := faultmirror.New(faultmirror.Drip, w.Rel, faultFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fm.Close() })
	id := w.AddMirror(t, fm.Name, fm.URL, nil)

	cfg := w.Deps.Config.Checks
	size := int64(len(w.Rel.Files[faultFile]))
	bound := cfg.ConnectTimeout.D() + cfg.HeaderTimeout.D() + w.Deps.Client.MaxBodyTime(size)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := sentry.Prime(ctx, w.Deps, sentry.PrimeOptions{Release: "1.5"})
	if err != nil {
		t.Fatal(err)
	}
	srep, err := sentry.Sweep(ctx, w.Deps, sentry.SweepOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []struct {
		name    string
		id      int64
		outcome string
	}{{"prime", rep.RunID, rep.Outcome}, {"deep sweep", srep.RunID, srep.Outcome}} {
		if run.outcome != store.OutcomeCompleted {
			t.Errorf("%s: outcome %s", run.name, run.outcome)
		}
		var kind, detail string
		var ms, bytes int64
		w.QueryRow(t, `SELECT result, detail, duration_ms, bytes FROM sentry_checks
			WHERE run_id = $1 AND mirror_id = $2 AND path = $3 AND method = 'GET'`, []any{run.id, id, faultFile},
			&kind, &detail, &ms, &bytes)
		took := time.Duration(ms) * time.Millisecond
		t.Logf("%s: %s after %s, %d of %d bytes: %s (bound %s)", run.name, kind, took, bytes, size, detail, bound)
		if kind != "timeout" {
			t.Errorf("%s: %s (%s), want timeout", run.name, kind, detail)
		}
		if !strings.Contains(detail, "B/s)") || !strings.Contains(detail, "minimum rate of 32 KiB/s") {
			t.Errorf("%s: detail %q does not give the rates", run.name, detail)
		}
		if took > bound {
			t.Errorf("%s: the check took %s, over its bound of %s", run.name, took, bound)
		}
		if bytes >= size {
			t.Errorf("%s: the drip was read to its end", run.name)
		}
	}
	if ctx.Err() != nil {
		t.Error("the runs outlived their deadline")
	}
}
