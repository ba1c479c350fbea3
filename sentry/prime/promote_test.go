package prime_test

import (
	"context"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestGoLiveWhenReady: with releases.aliases, the prime points the alias
// at the release's product once every location reached promote_at of its
// eligible capacity — not before: with a mirror of a fifth of the rating
// lacking a file, one location is at 79%, and the alias stays; once the
// mirror holds the file again, the next sweep moves it, once.
func TestGoLiveWhenReady(t *testing.T) {
	t.Parallel()
	w := world.New(t, &world.Options{Config: func(c *config.Config) {
		c.Releases.Aliases = map[string]string{"firefox-latest": "Firefox-{release}"}
	}})
	ctx := context.Background()
	factory.Alias(ctx, t, w.Pool(), &factory.AliasOpts{Alias: "firefox-latest", RelatedProduct: "Firefox-1.0"})
	good := world.Static(t, "good", w.Rel)
	w.Mirror(t, &factory.MirrorOpts{Name: "good", BaseURL: good.URL, Rating: factory.Ptr(79)})
	short := world.Static(t, "short", w.Rel)
	w.Mirror(t, &factory.MirrorOpts{Name: "short", BaseURL: short.URL, Rating: factory.Ptr(21)})
	short.Remove(w.Rel, lastFile) // win32: the win location is at 79%, linux at 100%

	alias := func() string {
		p, _, err := store.AliasProduct(ctx, w.Pool(), "firefox-latest")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	moves := func() (n int, by string, run int64) {
		w.QueryRow(t, `SELECT count(*), coalesce(max(by), ''), coalesce(max(run_id), 0) FROM sentry_alias_moves`, nil, &n, &by, &run)
		return
	}
	rep := w.Prime(t)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("prime: %s %s", rep.Outcome, rep.Reason)
	}
	if got := alias(); got != "Firefox-1.0" {
		t.Errorf("after the prime (win at 79%%), the alias names %s; want it unmoved", got)
	}
	if n, _, _ := moves(); n != 0 {
		t.Errorf("%d moves recorded", n)
	}

	short.Put(w.Rel, lastFile, w.Rel.Files[lastFile])
	sw := w.Sweep(t, false)
	if got := alias(); got != "Firefox-1.5" {
		t.Fatalf("after the sweep (every location at 100%%), the alias names %s", got)
	}
	if n, by, run := moves(); n != 1 || by != "sweep" || run != sw.RunID {
		t.Errorf("moves %d by %s run %d, want 1 by the sweep %d", n, by, run, sw.RunID)
	}
	w.Sweep(t, false)
	if n, _, _ := moves(); n != 1 {
		t.Errorf("%d moves after another sweep, want 1", n)
	}
}

// TestPrimeGoesLiveAtItsMarks: a prime moves the alias as soon as the
// marks of its mirrors bring every location to promote_at (here the one
// mirror of them all), by the prime and its run.
func TestPrimeGoesLiveAtItsMarks(t *testing.T) {
	t.Parallel()
	w := world.New(t, &world.Options{Config: func(c *config.Config) {
		c.Releases.Aliases = map[string]string{"firefox-latest": "Firefox-{release}"}
	}})
	w.Static(t, "good")
	rep := w.Prime(t)
	var to, by string
	var run int64
	w.QueryRow(t, `SELECT related_product, (SELECT by FROM sentry_alias_moves), (SELECT run_id FROM sentry_alias_moves)
		FROM mirror_aliases WHERE alias = 'firefox-latest'`, nil, &to, &by, &run)
	if to != "Firefox-1.5" || by != "prime" || run != rep.RunID {
		t.Errorf("alias row created naming %s, moved by %s run %d; want Firefox-1.5 by the prime %d", to, by, run, rep.RunID)
	}
}
