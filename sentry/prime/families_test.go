package prime_test

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
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
