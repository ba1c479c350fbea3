package sentry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/hook"
	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

// daemon runs RunDaemon for d until the test ends and returns its base URL.
// Its schedules do not fire during a test: hooks drive these tests.
func daemon(t *testing.T, d *sentry.Deps, opts sentry.DaemonOptions) string {
	t.Helper()
	return daemonScheduled(t, d, opts, "0 0 1 1 *", "0 0 1 1 *")
}

// daemonScheduled is daemon with the given schedules.
func daemonScheduled(t *testing.T, d *sentry.Deps, opts sentry.DaemonOptions, sweep, deep string) string {
	t.Helper()
	d.Config.HTTP.Listen = "127.0.0.1:0"
	d.Config.Hook.Secret = "hook-secret-for-tests"
	d.Config.ShutdownGrace = config.Duration(2 * time.Second)
	d.Config.Schedule.Sweep = sweep
	d.Config.Schedule.DeepSweep = deep
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		opts.Ready = func(a string) { addr <- a }
		done <- sentry.RunDaemon(ctx, d, opts)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	}
	return ""
}

func postHook(t *testing.T, base string, secret []byte, ts time.Time, body string) (int, map[string]any) {
	t.Helper()
	stamp := strconv.FormatInt(ts.Unix(), 10)
	req, err := http.NewRequest(http.MethodPost, base+"/hooks/release", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Sentry-Timestamp", stamp)
	req.Header.Set("X-Sentry-Signature", hook.Sign(secret, stamp, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out
}

func TestDaemonHookStartsPrime(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	_, id := w.Static(t, "good")
	type doneRun struct {
		id      int64
		outcome string
	}
	primed := make(chan doneRun, 1)
	base := daemon(t, d, sentry.DaemonOptions{PrimeDone: func(id int64, outcome string, err error) {
		primed <- doneRun{id, outcome}
	}})
	secret := []byte(d.Config.Hook.Secret)

	code, out := postHook(t, base, secret, time.Now(), `{"release": "1.5"}`)
	if code != http.StatusAccepted {
		t.Fatalf("hook: %d %v", code, out)
	}
	runID := int64(out["run_id"].(float64))
	got := <-primed
	if got.id != runID || got.outcome != "completed" {
		t.Fatalf("prime run %d: %+v", runID, got)
	}
	var outcome string
	if err := w.Pool().QueryRow(context.Background(), `SELECT outcome FROM sentry_runs WHERE id = $1`, runID).Scan(&outcome); err != nil || outcome != "completed" {
		t.Fatalf("run record: %q %v", outcome, err)
	}
	if w.Marks(t)[w.LocWin][id] != world.Good {
		t.Errorf("the hook's prime did not mark the mirror")
	}
}

func TestDaemonHookRefusesBadSignaturesAndReplays(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	w.Static(t, "good")
	base := daemon(t, d, sentry.DaemonOptions{})
	secret := []byte(d.Config.Hook.Secret)
	now := time.Now()
	tests := []struct {
		name   string
		secret []byte
		ts     time.Time
	}{
		{"wrong secret", []byte("not-the-secret"), now},
		{"old timestamp", secret, now.Add(-10 * time.Minute)},
		{"future timestamp", secret, now.Add(10 * time.Minute)},
	}
	for _, tt := range tests {
		code, out := postHook(t, base, tt.secret, tt.ts, `{"release": "1.5"}`)
		if code != http.StatusUnauthorized {
			t.Errorf("%s: %d %v, want 401", tt.name, code, out)
		}
		if body := fmt.Sprint(out); strings.Contains(body, string(secret)) {
			t.Errorf("%s: answer shows the secret: %s", tt.name, body)
		}
	}
	if n := w.CountRuns(t, "prime"); n != 0 {
		t.Errorf("%d prime runs started by refused hooks", n)
	}
	// A good hook, then the very same request again: the replay is refused.
	stamp := strconv.FormatInt(now.Unix(), 10)
	body := `{"release": "1.5"}`
	send := func() int {
		req, _ := http.NewRequest(http.MethodPost, base+"/hooks/release", bytes.NewReader([]byte(body)))
		req.Header.Set("X-Sentry-Timestamp", stamp)
		req.Header.Set("X-Sentry-Signature", hook.Sign(secret, stamp, []byte(body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(); code != http.StatusAccepted {
		t.Fatalf("good hook: %d", code)
	}
	if code := send(); code != http.StatusUnauthorized {
		t.Errorf("replayed hook: %d, want 401", code)
	}
	if n := w.CountRuns(t, "prime"); n != 1 {
		t.Errorf("%d prime runs, want 1", n)
	}
}

func TestDaemonHealthz(t *testing.T) {
	t.Parallel()
	d := world.New(t, nil).Deps
	base := daemon(t, d, sentry.DaemonOptions{})
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || out.Status != "ok" || out.Checks["database"] != "ok" {
		t.Errorf("healthz: %d %+v", resp.StatusCode, out)
	}
}

// TestDeepSweepDueDuringALightSweepRunsAfterIt: a deep sweep whose time
// comes while a light sweep is still running is not skipped: it runs once
// the light sweep ended, and completes.
func TestDeepSweepDueDuringALightSweepRunsAfterIt(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	m, _ := w.Static(t, "good")
	w.Prime(t)
	hold := make(chan struct{})
	var once sync.Once
	m.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, w.Rel.Dir) {
			<-hold // the first light sweep's files wait until the test lets go
		}
		return false
	})
	watch := &watches{}
	d.Logger = slog.New(signalHandler{d.Logger.Handler(), watch})
	waiting := watch.on("deep sweep due while a sweep runs")
	daemonScheduled(t, d, sentry.DaemonOptions{}, "@every 1s", "@every 2s")
	query := func(sql string, dest ...any) {
		t.Helper()
		if err := w.Pool().QueryRow(context.Background(), sql).Scan(dest...); err != nil {
			t.Fatal(err)
		}
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A light sweep holds the mirror until its deep sweep is due: the
	// deep job has fired (logged as waiting, or skipped) by then.
	until("a light sweep to hold the mirror", func() bool {
		var n int
		query(`SELECT count(*) FROM sentry_work w JOIN sentry_runs r ON r.id = w.run_id
			WHERE r.kind = 'sweep' AND w.claimed_by IS NOT NULL AND NOT w.done`, &n)
		return n > 0
	})
	var lightID int64
	query(`SELECT max(id) FROM sentry_runs WHERE kind = 'sweep'`, &lightID)
	wait(t, waiting, "the deep sweep to come due while the light one runs")
	once.Do(func() { close(hold) })
	until("a deep sweep to complete", func() bool {
		var n int
		query(`SELECT count(*) FROM sentry_runs WHERE kind = 'deep_sweep' AND outcome = 'completed'`, &n)
		return n > 0
	})
	var lightEnd, deepStart time.Time
	query(fmt.Sprintf(`SELECT (SELECT finished_at FROM sentry_runs WHERE id = %d),
		(SELECT min(started_at) FROM sentry_runs WHERE kind = 'deep_sweep')`, lightID), &lightEnd, &deepStart)
	if deepStart.Before(lightEnd) {
		t.Errorf("the deep sweep started at %s, before the light sweep ended at %s", deepStart, lightEnd)
	}
}

// TestDaemonPrunesOldRecords: `sentry run` prunes at start.
func TestDaemonPrunesOldRecords(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	_, id := w.Static(t, "good")
	w.Prime(t)
	w.AddOldRecords(t, id)
	daemon(t, d, sentry.DaemonOptions{})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var old int
		if err := w.Pool().QueryRow(context.Background(), `SELECT (SELECT count(*) FROM sentry_checks WHERE path = 'old')
			+ (SELECT count(*) FROM sentry_instances WHERE id = 'gone') + (SELECT count(*) FROM sentry_runs WHERE vantage = 'old')`).
			Scan(&old); err != nil {
			t.Fatal(err)
		}
		if old == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not prune the old records (%d left)", old)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := w.CountRecords(t); c.Checks == 0 || c.Log == 0 {
		t.Errorf("the daemon pruned recent records: %+v", c)
	}
}

// TestHookAsksTheMasterFirst: the hook answers 404 for a release the master
// does not have and 422 for an unusable manifest, starting nothing; a prime
// that fails in the background is a run_failed webhook event and counts in
// the metrics as a failed run.
func TestHookAsksTheMasterFirst(t *testing.T) {
	t.Parallel()
	recv := world.NewReceiver(t, 0)
	w := world.New(t, nil)
	d := w.Deps
	w.Static(t, "good")
	n := notify.New(notify.Options{URLs: []string{recv.URL}, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	m := metrics.New(w.Pool(), nil)
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
	w.Master.Put(w.Rel, "SHA256SUMS", []byte("not a manifest\n"))
	code, out = postHook(t, base, secret, time.Now().Add(time.Second), `{"release": "1.5"}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(out["error"].(string), "SHA256SUMS:1") {
		t.Errorf("unusable manifest: %d %v", code, out)
	}
	if n := w.CountRuns(t, "prime"); n != 0 {
		t.Fatalf("%d primes recorded for refused hooks", n)
	}

	// A release the master has but the bouncer does not: accepted, fails
	// in the background.
	w.Master.Put(w.Rel, "SHA256SUMS", w.Rel.Manifest())
	w.Exec(t, `DELETE FROM mirror_locations`)
	code, out = postHook(t, base, secret, time.Now().Add(2*time.Second), `{"release": "1.5"}`)
	if code != http.StatusAccepted {
		t.Fatalf("hook: %d %v", code, out)
	}
	<-finished
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var failed []notify.Event
	for _, e := range recv.Got() {
		if e.Event == notify.EventRunFailed {
			failed = append(failed, e)
		}
	}
	if len(failed) != 1 || failed[0].Run == nil || int64(out["run_id"].(float64)) != failed[0].Run.RunID ||
		failed[0].Run.Kind != "prime" || !strings.Contains(failed[0].Run.Reason, "no mirror_locations rows") {
		t.Errorf("run_failed events: %+v", failed)
	}
	fams := world.Scrape(t, m.Handler())
	if v, ok := world.Value(t, fams, "sentry_recent_runs", map[string]string{"kind": "prime", "outcome": "failed"}); !ok || v != 1 {
		t.Errorf("sentry_recent_runs{prime,failed} = %v (%v), want 1", v, ok)
	}
	if v, ok := world.Value(t, fams, "sentry_last_run_outcome", map[string]string{"kind": "prime", "outcome": "failed"}); !ok || v != 1 {
		t.Errorf("sentry_last_run_outcome{prime,failed} = %v (%v), want 1", v, ok)
	}
}
