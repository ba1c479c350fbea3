package sentry_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// lastRun reads the newest run's outcome and reason.
func lastRun(t *testing.T, b *bundle) (string, string) {
	t.Helper()
	var outcome, reason string
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT outcome, reason FROM sentry_runs ORDER BY id DESC LIMIT 1`).
		Scan(&outcome, &reason); err != nil {
		t.Fatal(err)
	}
	return outcome, reason
}

// TestNothingToCheckFailsBeforeAnyMirror: a prime or sweep that would check
// nothing the redirector serves fails, recorded as failed with the reason,
// and no mirror is asked anything.
func TestNothingToCheckFailsBeforeAnyMirror(t *testing.T) {
	tests := []struct {
		name  string
		sweep bool
		set   func(t *testing.T, d *sentry.Deps, b *bundle)
		want  []string
	}{
		{"a typo in releases.products", false, func(t *testing.T, d *sentry.Deps, b *bundle) {
			d.Config.Releases.Products = []string{"Firefx-{release}"}
		}, []string{"matches no bouncer product", `"Firefx-{release}"`, `"Firefx-1.5"`, "1 product: Firefox-1.5"}},
		{"an empty bouncer database", false, func(t *testing.T, d *sentry.Deps, b *bundle) {
			sqlExec(t, b, `DELETE FROM mirror_locations; DELETE FROM mirror_product_langs; DELETE FROM mirror_products`)
		}, []string{"matches no bouncer product", "no product at all"}},
		{"products without locations", false, func(t *testing.T, d *sentry.Deps, b *bundle) {
			sqlExec(t, b, `DELETE FROM mirror_locations`)
		}, []string{"(Firefox-1.5) have no mirror_locations rows"}},
		{"no location maps onto the manifest", false, func(t *testing.T, d *sentry.Deps, b *bundle) {
			sqlExec(t, b, `UPDATE mirror_locations SET path = replace(path, '1.5/', '1.5/old/')`)
		}, []string{"none of the 2 locations of release 1.5 maps onto its manifest", "not in the manifest: old/"}},
		{"no active mirror", false, func(t *testing.T, d *sentry.Deps, b *bundle) {
			sqlExec(t, b, `UPDATE mirror_mirrors SET active = false`)
		}, []string{"no active mirror"}},
		{"an unknown --mirror", false, func(t *testing.T, d *sentry.Deps, b *bundle) {}, []string{`no active mirror named "nope"`, "active mirrors: good"}},
		{"a sweep before any prime", true, func(t *testing.T, d *sentry.Deps, b *bundle) {}, []string{"sentry knows no release yet"}},
		{"a sweep of inactive products only", true, func(t *testing.T, d *sentry.Deps, b *bundle) {
			if _, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"}); err != nil {
				t.Fatal(err)
			}
			sqlExec(t, b, `UPDATE mirror_products SET active = false`)
		}, []string{"of the releases sentry knows (1.5), none has a location of an active bouncer product"}},
		{"a sweep of an unknown --mirror", true, func(t *testing.T, d *sentry.Deps, b *bundle) {}, []string{`no active mirror named "nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, b := setup(t)
			m, _ := b.static(t, "good")
			tt.set(t, d, b)
			before := m.Stats().Requests
			var only []string
			if strings.Contains(tt.name, "--mirror") {
				only = []string{"nope"}
			}
			var err error
			if tt.sweep {
				_, err = sentry.Sweep(context.Background(), d, sentry.SweepOptions{Mirrors: only})
			} else {
				_, err = sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5", Mirrors: only})
			}
			if err == nil {
				t.Fatal("the run succeeded")
			}
			if only == nil && !errors.Is(err, release.ErrNothingToDo) {
				t.Errorf("error %v is not ErrNothingToDo", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if n := m.Stats().Requests - before; n != 0 {
				t.Errorf("the mirror was asked %d times", n)
			}
			if outcome, reason := lastRun(t, b); outcome != store.OutcomeFailed || reason != err.Error() {
				t.Errorf("run recorded %s %q, want failed with the error", outcome, reason)
			}
		})
	}
}

// TestRestrictedRuns: --mirror primes and sweeps the named mirror only, and
// one dead mirror alone is marked down (the guard's share does not apply
// to a restricted run).
func TestRestrictedRuns(t *testing.T) {
	d, b := setup(t)
	a, _ := b.static(t, "a")
	other, _ := b.static(t, "other")
	rep, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5", Mirrors: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Mirrors) != 1 || rep.Mirrors[0].Name != "a" || rep.Mirrors[0].State != "ok" || other.Stats().Requests != 0 {
		t.Fatalf("prime --mirror a: %+v; other asked %d times", rep.Mirrors, other.Stats().Requests)
	}
	if a.Stats().Requests == 0 {
		t.Fatal("a was not asked")
	}
	failing(a).Store(true)
	for range d.Config.State.DownAfter {
		srep, err := sentry.Sweep(context.Background(), d, sentry.SweepOptions{Mirrors: []string{"a"}})
		if err != nil {
			t.Fatal(err)
		}
		if srep.Outcome != store.OutcomeCompleted || len(srep.Mirrors) != 1 {
			t.Fatalf("sweep --mirror a: %s %s, %d mirrors", srep.Outcome, srep.Reason, len(srep.Mirrors))
		}
	}
	var state string
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT state FROM sentry_mirror_state ms JOIN mirror_mirrors m ON m.id = ms.mirror_id
		WHERE m.name = 'a'`).Scan(&state); err != nil || state != "down" {
		t.Errorf("a after %d failed sweeps of it alone: %q %v", d.Config.State.DownAfter, state, err)
	}
	if other.Stats().Requests != 0 {
		t.Errorf("other was asked %d times by sweeps of a", other.Stats().Requests)
	}
}

// TestTriggerMirrorWithoutSecretIsAConfigError: with a trigger mirror and
// no trigger secret, prime, sweep and the daemon refuse to start, naming
// the mirror and what to set.
func TestTriggerMirrorWithoutSecretIsAConfigError(t *testing.T) {
	d, b := setup(t)
	trig, err := localmirror.NewTrigger("trig", b.rel, []byte("x"), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trig.Close() })
	b.addMirror(t, "trig", trig.URL, "trigger", trig.TriggerURL, 0)
	d.Config.Trigger.Secret = ""
	d.Config.HTTP.Listen = "127.0.0.1:0"
	for what, run := range map[string]func() error{
		"prime": func() error {
			_, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
			return err
		},
		"sweep": func() error { _, err := sentry.Sweep(context.Background(), d, sentry.SweepOptions{}); return err },
		"run":   func() error { return sentry.RunDaemon(context.Background(), d, sentry.DaemonOptions{}) },
	} {
		err := run()
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "trig") || !strings.Contains(err.Error(), "SENTRY_TRIGGER_SECRET") {
			t.Errorf("%s: %v, want a configuration error naming trig and the secret", what, err)
		}
	}
	if n := countRuns(t, b, "prime") + countRuns(t, b, "sweep"); n != 0 || trig.Stats().Requests != 0 {
		t.Errorf("%d runs recorded, the mirror asked %d times", n, trig.Stats().Requests)
	}
}

// TestHookAsksTheMasterFirst: the hook answers 404 for a release the master
// does not have and 422 for an unusable manifest, starting nothing; a prime
// that fails in the background is a run_failed webhook event and counts in
// the metrics as a failed run.
func TestHookAsksTheMasterFirst(t *testing.T) {
	recv := newReceiver(t, 0)
	d, b := setup(t)
	b.static(t, "good")
	n := notify.New(notify.Options{URLs: []string{recv.URL}, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	m := metrics.New(b.st.Pool(), nil)
	d.Observer = observe.All(n, m)
	var mu sync.Mutex
	var done []string
	finished := make(chan struct{}, 1)
	base := daemon(t, d, sentry.DaemonOptions{PrimeDone: func(id int64, outcome string, err error) {
		mu.Lock()
		done = append(done, outcome)
		mu.Unlock()
		finished <- struct{}{}
	}})
	secret := []byte(d.Config.Hook.Secret)

	code, out := postHook(t, base, secret, time.Now(), `{"release": "9.9"}`)
	if code != http.StatusNotFound || !strings.Contains(out["error"].(string), "release 9.9 is not on the master") {
		t.Errorf("release the master lacks: %d %v", code, out)
	}
	b.master.Put(b.rel, "SHA256SUMS", []byte("not a manifest\n"))
	code, out = postHook(t, base, secret, time.Now().Add(time.Second), `{"release": "1.5"}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(out["error"].(string), "SHA256SUMS:1") {
		t.Errorf("unusable manifest: %d %v", code, out)
	}
	if n := countRuns(t, b, "prime"); n != 0 {
		t.Fatalf("%d primes recorded for refused hooks", n)
	}

	// A release the master has but the bouncer does not: accepted, fails
	// in the background.
	b.master.Put(b.rel, "SHA256SUMS", b.rel.Manifest())
	sqlExec(t, b, `DELETE FROM mirror_locations`)
	code, out = postHook(t, base, secret, time.Now().Add(2*time.Second), `{"release": "1.5"}`)
	if code != http.StatusAccepted {
		t.Fatalf("hook: %d %v", code, out)
	}
	<-finished
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var failed []notify.Event
	for _, e := range recv.got() {
		if e.Event == notify.EventRunFailed {
			failed = append(failed, e)
		}
	}
	if len(failed) != 1 || failed[0].Run == nil || int64(out["run_id"].(float64)) != failed[0].Run.RunID ||
		failed[0].Run.Kind != "prime" || !strings.Contains(failed[0].Run.Reason, "no mirror_locations rows") {
		t.Errorf("run_failed events: %+v", failed)
	}
	fams := scrape(t, m)
	if v, ok := value(t, fams, "sentry_recent_runs", map[string]string{"kind": "prime", "outcome": "failed"}); !ok || v != 1 {
		t.Errorf("sentry_recent_runs{prime,failed} = %v (%v), want 1", v, ok)
	}
	if v, ok := value(t, fams, "sentry_last_run_outcome", map[string]string{"kind": "prime", "outcome": "failed"}); !ok || v != 1 {
		t.Errorf("sentry_last_run_outcome{prime,failed} = %v (%v), want 1", v, ok)
	}
}

func sqlExec(t *testing.T, b *bundle, sql string) {
	t.Helper()
	if _, err := b.st.Pool().Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}
