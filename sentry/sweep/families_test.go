package sweep_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// dualStack serves a static mirror on 127.0.0.1:PORT and, unless broken,
// on [::1]:PORT too, under a host name that resolves to both (the
// client's Resolver): a dual-stack mirror on loopback, without
// /etc/hosts. Broken, nothing listens on [::1]:PORT: connections over
// IPv6 are refused.
func dualStack(t *testing.T, w *world.World, name string, broken bool) (string, int) {
	t.Helper()
	s, err := localmirror.NewStatic(name, w.Rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	u, _ := url.Parse(s.URL)
	port := u.Port()
	if broken {
		if c, err := net.Dial("tcp6", "[::1]:"+port); err == nil {
			c.Close()
			t.Fatalf("something listens on [::1]:%s already: cannot make %s broken over IPv6", port, name)
		}
	} else {
		ln, err := net.Listen("tcp6", "[::1]:"+port)
		if err != nil {
			t.Fatalf("cannot listen on [::1]:%s beside 127.0.0.1 for %s: %v", port, name, err)
		}
		srv := &http.Server{Handler: s}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
	}
	host := name + ".dual.test"
	base := "http://" + net.JoinHostPort(host, port) + "/pub"
	return base, w.AddMirror(t, name, base, nil)
}

// TestDualStackMirrorBrokenOverIPv6 checks dual-stack mirrors over each
// address family: the one refusing IPv6 is reported degraded and kept
// offered (state.family_policy degraded), then taken down by the policy
// "down"; a vantage point that says it reaches IPv4 only
// (checks.families) does not find it broken at all.
func TestDualStackMirrorBrokenOverIPv6(t *testing.T) {
	t.Parallel()
	realmirror.NeedIPv6Loopback(t)
	w := world.New(t, nil)
	d := w.Deps
	w.Resolve(t, realmirror.DualResolver)
	dualStack(t, w, "both1", false)
	dualStack(t, w, "both2", false)
	_, broken := dualStack(t, w, "v4only", true)
	if rep := w.Prime(t); rep.Outcome != "completed" {
		t.Fatalf("prime: %s %s", rep.Outcome, rep.Reason)
	}
	ctx := context.Background()
	rows := func() map[string]report.MirrorRow {
		t.Helper()
		ms, err := report.New(w.Pool(), nil).States(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]report.MirrorRow{}
		for _, m := range ms {
			out[m.Name] = m
		}
		return out
	}
	offered := func() int {
		t.Helper()
		n := 0
		for _, byMirror := range w.Marks(t) {
			if r, ok := byMirror[broken]; ok && r.Active && r.Healthy {
				n++
			}
		}
		return n
	}

	// degraded (the default): reported, kept offered.
	for range 2 {
		w.Sweep(t, false)
	}
	r := rows()
	v := r["v4only"]
	if v.State != "up" || v.Condition() != "degraded" || !slices.Equal(v.BrokenFamilies, []string{"ipv6"}) ||
		!strings.Contains(v.Why(), "broken over IPv6") || !strings.Contains(v.LastReason, "broken over IPv6: connect") {
		t.Errorf("v4only: %s %s %v, why %q, last %q; want up, degraded, broken over ipv6", v.State, v.Condition(), v.BrokenFamilies,
			v.Why(), v.LastReason)
	}
	if n := offered(); n != 2 {
		t.Errorf("degraded policy: %d locations of v4only offered, want both", n)
	}
	for _, name := range []string{"both1", "both2"} {
		if m := r[name]; m.Condition() != "up" || len(m.BrokenFamilies) != 0 {
			t.Errorf("%s: %s %v", name, m.Condition(), m.BrokenFamilies)
		}
	}
	// Each family's check is recorded with its family (the prime's too:
	// the sweeps' are counted here).
	var v6fail, v4 int
	if err := w.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE family = 'ipv6' AND result = 'connect'),
		count(*) FILTER (WHERE family = 'ipv4') FROM sentry_checks
		WHERE mirror_id = $1 AND run_id IN (SELECT id FROM sentry_runs WHERE kind = 'sweep')`, broken).Scan(&v6fail, &v4); err != nil {
		t.Fatal(err)
	}
	if v6fail != 2 {
		t.Errorf("%d IPv6 connect failures recorded for v4only, want one per sweep (2)", v6fail)
	}
	// The metric says it too.
	fams, err := metrics.New(w.Pool(), nil).Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fams {
		if f.GetName() == "sentry_mirror_family_broken" {
			for _, m := range f.GetMetric() {
				got = append(got, fmt.Sprintf("%s/%s=%v", m.GetLabel()[1].GetValue(), m.GetLabel()[0].GetValue(), m.GetGauge().GetValue()))
			}
		}
	}
	if !slices.Equal(got, []string{"v4only/ipv6=1"}) {
		t.Errorf("sentry_mirror_family_broken: %v", got)
	}

	// down: the broken family counts against the mirror.
	d.Config.State.FamilyPolicy = config.PolicyDown
	for range 2 {
		w.Sweep(t, false)
	}
	if v := rows()["v4only"]; v.State != "down" {
		t.Errorf("down policy: v4only is %s, want down", v.State)
	}
	if n := offered(); n != 0 {
		t.Errorf("down policy: %d locations of v4only still healthy, want none", n)
	}
	if m := rows()["both1"]; m.State != "up" {
		t.Errorf("down policy: both1 is %s", m.State)
	}

	// A vantage point reaching IPv4 only does not check IPv6: the mirror
	// comes back and is not degraded.
	d.Config.Checks.Families = []string{config.FamilyIPv4}
	for range 2 {
		w.Sweep(t, false)
	}
	if v := rows()["v4only"]; v.State != "up" || v.Condition() != "up" || len(v.BrokenFamilies) != 0 {
		t.Errorf("ipv4 only: v4only %s %s %v, want up", v.State, v.Condition(), v.BrokenFamilies)
	}
	var after int
	if err := w.Pool().QueryRow(ctx, `SELECT count(*) FROM sentry_checks WHERE mirror_id = $1 AND family = 'ipv6' AND result = 'connect'
		AND run_id IN (SELECT id FROM sentry_runs WHERE kind = 'sweep')`, broken).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != 4 {
		t.Errorf("%d IPv6 failures after the IPv4-only sweeps, want the 4 of before", after)
	}
}
