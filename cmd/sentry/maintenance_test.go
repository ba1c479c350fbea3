package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mirrorsentry/sentry/internal/testkit/smtptest"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/web"
)

// hookSink records the webhook events it is sent.
type hookSink struct {
	mu     sync.Mutex
	events []map[string]any
}

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var e map[string]any
	if json.Unmarshal(body, &e) == nil {
		h.mu.Lock()
		h.events = append(h.events, e)
		h.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

// about counts the events of type kind about mirror.
func (h *hookSink) about(kind, mirror string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.events {
		sc, _ := e["state_change"].(map[string]any)
		if e["event"] == kind && sc != nil && sc["mirror"] == mirror {
			n++
		}
	}
	return n
}

// TestMaintenanceWindow announces a mirror's maintenance with the
// command: its locations go unhealthy at once, the page says "maintenance
// until …, reason", it is not contacted, its failures count for nothing
// and nothing is announced (no state change, no webhook, no mail, no
// alerting series); after --end it is re-verified — every file hashed,
// one of them found corrupted during the window — before it is offered
// again, and only for what the re-verification found good. The window and
// the return are in the state history.
func TestMaintenanceWindow(t *testing.T) {
	t.Parallel()
	mailer := smtptest.Start(t, smtptest.Options{})
	hooks := &hookSink{}
	hookSrv := httptest.NewServer(hooks)
	t.Cleanup(hookSrv.Close)

	w := newAdminWorld(t, fmt.Sprintf(`checks:
  contact: ops@example.org
  per_mirror_rate: 100000
  retries: 0
notify:
  webhooks: [%q]
  smtp:
    host: 127.0.0.1
    port: %d
    starttls: false
    from: sentry@example.org
`, hookSrv.URL, mailer.Port))
	var mirrors []*localmirror.Server
	for _, name := range []string{"busy", "calm1", "calm2"} {
		s, err := localmirror.NewStatic(name, w.Rel)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		mirrors = append(mirrors, s)
		w.addMirror(t, name, s.URL, "admin-"+name+"@example.org")
	}
	busy := mirrors[0]
	var broken atomic.Bool
	busy.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if broken.Load() {
			http.Error(w, "disks out", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	w.run(t, 0, "prime", "--release", "1.5")
	w.run(t, 0, "sweep")

	// Bad input: clear errors, the contract's exit codes, nothing written.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"mirror", "maintenance", "nosuch", "--until", "2h"}, 1, `no such mirror named "nosuch"`},
		{[]string{"mirror", "maintenance", "busy", "--until", "2001-01-01 00:00"}, 2, "is not in the future"},
		{[]string{"mirror", "maintenance", "busy", "--until", "soon"}, 2, `--until "soon"`},
		{[]string{"mirror", "maintenance", "busy"}, 2, "--until TIME is required"},
		{[]string{"mirror", "maintenance", "--until", "2h"}, 2, "NAME is required"},
		{[]string{"mirror", "maintenance", "busy", "--end"}, 1, "no maintenance window holds"},
		{[]string{"mirror", "maintenance", "busy", "--end", "--until", "2h"}, 2, "give it alone"},
	} {
		_, stderr, code := runSentry(t, w.Config, w.env, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("sentry %s: exit %d, want %d with %q:\n%s", strings.Join(c.args, " "), code, c.code, c.want, stderr)
		}
	}
	var windows int
	w.Query(t, `SELECT count(*) FROM sentry_maintenance`, &windows)
	if windows != 0 {
		t.Fatalf("bad input wrote %d windows", windows)
	}

	out := w.run(t, 0, "mirror", "maintenance", "busy", "--until", "2h", "--reason", "disk swap")
	if !strings.Contains(out, "mirror busy: in maintenance: maintenance until") || !strings.Contains(out, "disk swap") {
		t.Errorf("maintenance: %q", out)
	}
	healthy := func() int {
		t.Helper()
		var n int
		w.Query(t, `SELECT count(*) FROM mirror_location_mirror_map lmm JOIN mirror_mirrors m ON m.id = lmm.mirror_id
			WHERE m.name = 'busy' AND lmm.healthy`, &n)
		return n
	}
	if n := healthy(); n != 0 {
		t.Errorf("in maintenance, %d locations of busy healthy, want none (the redirector avoids it)", n)
	}

	// During the window: the mirror breaks, and one file is corrupted in
	// place (the same size: a HEAD would not see it).
	broken.Store(true)
	corrupt := "linux-x86_64/en-US/firefox-1.5.tar.bz2"
	busy.Put(w.Rel, corrupt, localmirror.Flip(w.Rel.Files[corrupt]))
	before := busy.Stats().Requests
	for range 3 {
		w.run(t, 0, "sweep")
	}
	if n := busy.Stats().Requests - before; n != 0 {
		t.Errorf("the mirror in maintenance was asked %d times", n)
	}
	rows := w.report(t)
	b := rows["busy"]
	if b.Maintenance == nil || b.Maintenance.Reason != "disk swap" || b.State != "up" || healthy() != 0 {
		t.Errorf("busy in its window: %+v", b)
	}
	var logReason string
	w.Query(t, `SELECT reason FROM sentry_log l JOIN mirror_mirrors m ON m.id = l.mirror_id WHERE m.name = 'busy'
		ORDER BY log_date DESC LIMIT 1`, &logReason)
	if !strings.HasPrefix(logReason, "maintenance until ") || !strings.Contains(logReason, "disk swap") {
		t.Errorf("sentry_log during the window: %q", logReason)
	}

	// The page, and the series alerts read.
	pool, err := pgxpool.New(context.Background(), w.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	page, err := web.New(web.Options{Reporter: report.New(pool, nil)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	page.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/mirrors/busy", nil))
	if body := rec.Body.String(); rec.Code != 200 || !strings.Contains(body, "Why: maintenance until ") || !strings.Contains(body, ", disk swap") {
		t.Errorf("the mirror's page: %d\n%s", rec.Code, body)
	}
	fams, err := metrics.New(pool, nil).Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			if label(m, "mirror") != "busy" {
				continue
			}
			switch {
			case f.GetName() == "sentry_mirror_up":
				t.Errorf("sentry_mirror_up{mirror=busy} exported in maintenance (SentryMirrorDown would fire)")
			case f.GetName() == "sentry_mirror_state" && label(m, "state") == "maintenance" && m.GetGauge().GetValue() != 1,
				f.GetName() == "sentry_mirror_state" && label(m, "state") == "degraded" && m.GetGauge().GetValue() != 0:
				t.Errorf("sentry_mirror_state{mirror=busy,state=%s} = %v", label(m, "state"), m.GetGauge().GetValue())
			}
		}
	}

	// The window ends; the mirror answers again. Until a sweep re-verifies
	// it, nothing is offered.
	broken.Store(false)
	out = w.run(t, 0, "mirror", "maintenance", "busy", "--end")
	if !strings.Contains(out, "maintenance ended") || healthy() != 0 {
		t.Errorf("--end: %q, %d healthy locations", out, healthy())
	}
	before = busy.Stats().Requests
	w.run(t, 0, "sweep")
	var hashed, mismatch int
	w.Query(t, `SELECT count(*) FILTER (WHERE c.hashed), count(*) FILTER (WHERE c.result = 'checksum_mismatch')
		FROM sentry_checks c JOIN mirror_mirrors m ON m.id = c.mirror_id
		WHERE m.name = 'busy' AND c.checked_at > (SELECT since FROM sentry_maintenance mw WHERE mw.mirror_id = m.id)`, &hashed, &mismatch)
	if hashed != 2 || mismatch != 1 {
		t.Errorf("re-verification: %d files hashed (want both), %d checksum mismatches (want the corrupted one)", hashed, mismatch)
	}
	var win, lin string
	w.Query(t, `SELECT
		max(CASE WHEN l.path LIKE '%win32%' THEN lmm.active::text || '/' || lmm.healthy::text END),
		max(CASE WHEN l.path LIKE '%linux%' THEN lmm.active::text || '/' || lmm.healthy::text END)
		FROM mirror_location_mirror_map lmm JOIN mirror_mirrors m ON m.id = lmm.mirror_id JOIN mirror_locations l ON l.id = lmm.location_id
		WHERE m.name = 'busy'`, &win, &lin)
	if win != "true/true" || lin != "false/false" {
		t.Errorf("after re-verification: win32 %s (want offered), linux %s (want off: corrupted)", win, lin)
	}
	var history []string
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rowsQ, err := conn.Query(context.Background(), `SELECT from_state || '>' || to_state FROM sentry_state_changes sc
		JOIN mirror_mirrors m ON m.id = sc.mirror_id WHERE m.name = 'busy' ORDER BY sc.id`)
	if err != nil {
		t.Fatal(err)
	}
	for rowsQ.Next() {
		var s string
		_ = rowsQ.Scan(&s)
		history = append(history, s)
	}
	rowsQ.Close()
	conn.Release()
	if strings.Join(history, ",") != "up>maintenance,maintenance>up" {
		t.Errorf("state history of busy: %v", history)
	}
	if b := w.report(t)["busy"]; b.Maintenance != nil || b.Returning {
		t.Errorf("after its return: %+v", b)
	}

	// Nothing was announced for it: no mail, no webhook of a failure.
	if n := hooks.about("mirror_state_changed", "busy"); n != 1 { // its return only
		t.Errorf("%d state-change webhooks about busy, want 1 (its return)", n)
	}
	if ms := mailTo(mailer.Messages(t), "admin-busy@example.org"); len(ms) != 0 {
		t.Errorf("%d mails to busy's admin, want none", len(ms))
	}
}
