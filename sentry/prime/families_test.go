package prime_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// v4Only starts a mirror holding the release on 127.0.0.1 under a name
// resolving to 127.0.0.1 and ::1, where nothing answers for it: a
// dual-stack mirror broken over IPv6 (refused, or unreachable on a host
// without IPv6).
func v4Only(t *testing.T, w *world.World, name string) int {
	t.Helper()
	s := world.Static(t, name, w.Rel)
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return w.AddMirror(t, name, "http://"+net.JoinHostPort(name+".dual.test", u.Port())+u.Path, nil)
}

// TestPrimeFamilyPolicyDownSetsAsideItsOwnTrouble: under
// state.family_policy down, a mirror broken over IPv6 counts as an
// unreachable one — unless this vantage point failed most dual-stack
// mirrors over IPv6 (its own IPv6 route gone, more likely), as a sweep
// sets such verdicts aside: then every one is marked as its files say. A
// prime restricted to one mirror (--mirror) has no share to weigh: the
// mirror is taken down.
func TestPrimeFamilyPolicyDownSetsAsideItsOwnTrouble(t *testing.T) {
	t.Parallel()
	w := world.New(t, &world.Options{Config: func(c *config.Config) { c.State.FamilyPolicy = config.PolicyDown }})
	w.Resolve(t, realmirror.DualResolver)
	a, b := v4Only(t, w, "a"), v4Only(t, w, "b")
	_, single := w.Static(t, "single")
	rep := w.Prime(t)
	if rep.Outcome != "completed" {
		t.Fatalf("prime: %s %s", rep.Outcome, rep.Reason)
	}
	marks := w.Marks(t)
	for _, id := range []int{a, b, single} {
		for _, loc := range []int{w.LocWin, w.LocLin} {
			if marks[loc][id] != world.Good {
				t.Errorf("mirror %d, location %d: %+v; want offered (every dual-stack mirror failing over IPv6 is this vantage point's trouble)",
					id, loc, marks[loc][id])
			}
		}
	}
	for _, name := range []string{"a", "b"} {
		if s := world.MirrorSums(t, rep, name); s.State != "ok" || !strings.Contains(s.Note, "not counted against it") {
			t.Errorf("%s: %s, note %q", name, s.State, s.Note)
		}
	}
	if !strings.Contains(w.Logs.String(), "vantage point failed most mirrors over one address family") {
		t.Error("the set-aside was not logged")
	}

	rep, err := sentry.Prime(context.Background(), w.Deps, sentry.PrimeOptions{Release: w.Rel.Name, Force: true, Mirrors: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if s := world.MirrorSums(t, rep, "a"); s.State != "down" || !strings.Contains(s.Note, "broken over IPv6") {
		t.Errorf("a, primed alone: %s, note %q; want down, broken over IPv6", s.State, s.Note)
	}
	marks = w.Marks(t)
	if marks[w.LocWin][a].Healthy || marks[w.LocLin][a].Healthy || marks[w.LocWin][b] != world.Good {
		t.Errorf("after a prime of a alone: a %+v %+v, b %+v; want a unhealthy, b offered", marks[w.LocWin][a], marks[w.LocLin][a], marks[w.LocWin][b])
	}
}

// dualStack starts a mirror holding the release on 127.0.0.1 and [::1],
// on one port, under a name resolving to both: a dual-stack mirror
// answering over each family.
func dualStack(t *testing.T, w *world.World, name string) int {
	t.Helper()
	s := world.Static(t, name, w.Rel)
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp6", net.JoinHostPort("::1", u.Port()))
	if err != nil {
		t.Skipf("cannot listen on [::1]:%s beside 127.0.0.1: %v", u.Port(), err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return w.AddMirror(t, name, "http://"+net.JoinHostPort(name+".dual.test", u.Port())+u.Path, nil)
}

// TestPrimeFamilyPolicyDownUnderTheGuard: when the mass-failure guard
// holds (most mirrors failed the prime), a mirror broken over IPv6 under
// state.family_policy down is not taken down: its files' good marks are
// written, as they would be under degraded.
func TestPrimeFamilyPolicyDownUnderTheGuard(t *testing.T) {
	t.Parallel()
	realmirror.NeedIPv6Loopback(t)
	w := world.New(t, &world.Options{Config: func(c *config.Config) { c.State.FamilyPolicy = config.PolicyDown }})
	w.Resolve(t, realmirror.DualResolver)
	broken := v4Only(t, w, "broken")
	dualStack(t, w, "both")
	for _, name := range []string{"dead1", "dead2"} {
		dead, err := localmirror.DeadURL()
		if err != nil {
			t.Fatal(err)
		}
		w.AddMirror(t, name, dead, nil)
	}
	rep := w.Prime(t)
	if rep.Outcome != "guarded" {
		t.Fatalf("prime: %s %s; want guarded (3 of 4 mirrors failed)", rep.Outcome, rep.Reason)
	}
	if s := world.MirrorSums(t, rep, "broken"); s.State != "ok" || !strings.Contains(s.Note, "not marked down") {
		t.Errorf("broken: %s, note %q; want its files' state, not marked down", s.State, s.Note)
	}
	marks := w.Marks(t)
	if marks[w.LocWin][broken] != world.Good || marks[w.LocLin][broken] != world.Good {
		t.Errorf("broken under the guard: %+v %+v; want its files' good marks", marks[w.LocWin][broken], marks[w.LocLin][broken])
	}
}
