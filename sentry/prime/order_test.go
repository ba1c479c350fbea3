package prime_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestCapacityFirst(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []store.Mirror // ID, Rating
		want []int          // ids
	}{
		{"empty", nil, []int{}},
		{"by rating", []store.Mirror{{ID: 1, Rating: 1}, {ID: 2, Rating: 100}, {ID: 3, Rating: 10}}, []int{2, 3, 1}},
		{"ties by id", []store.Mirror{{ID: 7, Rating: 5}, {ID: 3, Rating: 5}, {ID: 5, Rating: 5}}, []int{3, 5, 7}},
		{"zero and negative last", []store.Mirror{{ID: 1, Rating: 0}, {ID: 2, Rating: -1}, {ID: 3, Rating: 2}}, []int{3, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got := []int{}
			for _, m := range prime.CapacityFirst(tt.in) {
				got = append(got, m.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("the argument was changed: %v", tt.in)
			}
		})
	}
}

// oneAtATime is a sentry that works one mirror at a time, one request at
// a time: the order of its claims is the order mirrors are verified in.
func oneAtATime(c *config.Config) {
	c.Checks.Concurrency = 1
	c.Checks.PerMirrorConcurrency = 1
}

// firstChecks are the mirrors of run in the order their first file check
// was made.
func firstChecks(t *testing.T, w *world.World, runID int64) []int {
	t.Helper()
	rows, err := w.Pool().Query(context.Background(), `SELECT mirror_id FROM sentry_checks WHERE run_id = $1 AND path <> ''
		GROUP BY mirror_id ORDER BY min(checked_at), mirror_id`, runID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPrimeVerifiesTheHighestRatedFirst: a prime claims its mirrors by
// descending rating (ties by id), whatever order their ids are in, so
// that the mirrors taking most of the downloads are verified and marked
// first.
func TestPrimeVerifiesTheHighestRatedFirst(t *testing.T) {
	t.Parallel()
	w := world.New(t, &world.Options{Config: oneAtATime})
	ratings := map[string]int{}
	var want []int
	ids := map[string]int{}
	for _, m := range []struct {
		name   string
		rating int
	}{{"r10", 10}, {"r50a", 50}, {"r30", 30}, {"r50b", 50}, {"r1", 1}, {"r70", 70}} {
		s := world.Static(t, m.name, w.Rel)
		ids[m.name] = w.Mirror(t, &factory.MirrorOpts{Name: m.name, BaseURL: s.URL, Rating: factory.Ptr(m.rating)})
		ratings[m.name] = m.rating
	}
	for _, n := range []string{"r70", "r50a", "r50b", "r30", "r10", "r1"} {
		want = append(want, ids[n])
	}
	rep := w.Prime(t)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	if got := firstChecks(t, w, rep.RunID); !slices.Equal(got, want) {
		t.Errorf("mirrors verified in the order %v, want %v (by descending rating, ties by id)", got, want)
	}
	// And the rows were completed in that order too: each mirror was
	// marked before the next was started.
	rows, err := w.Pool().Query(context.Background(), `SELECT mirror_id FROM sentry_work WHERE run_id = $1 ORDER BY done_at`, rep.RunID)
	if err != nil {
		t.Fatal(err)
	}
	var done []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		done = append(done, id)
	}
	rows.Close()
	if !slices.Equal(done, want) {
		t.Errorf("work rows done in the order %v, want %v", done, want)
	}
}

// TestPrimeVerifiesTheHighestRatedFirstAcrossInstances: with two sentries
// on the database, each working one mirror at a time, every claim takes
// the highest-rated mirror left (but for the one the other sentry is
// claiming at the same moment): no mirror is verified after more than one
// mirror rated below it was started.
func TestPrimeVerifiesTheHighestRatedFirstAcrossInstances(t *testing.T) {
	t.Parallel()
	w := world.New(t, &world.Options{Config: oneAtATime})
	rating := map[int]int{}
	// The top-rated mirror answers only once the second sentry is seen
	// working on the second-rated one (this sentry's one slot being
	// taken by the top mirror): both sentries take part.
	gate := make(chan struct{})
	var once sync.Once
	openTop := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(openTop)
	top := 0
	// Ratings in no order of ids.
	for i, r := range []int{20, 5, 90, 40, 70, 1, 60, 30, 80, 10} {
		name := "m" + string(rune('a'+i))
		s := world.Static(t, name, w.Rel)
		id := w.Mirror(t, &factory.MirrorOpts{Name: name, BaseURL: s.URL, Rating: factory.Ptr(r)})
		rating[id] = r
		switch r {
		case 90:
			top = id
			s.HandleFunc(func(http.ResponseWriter, *http.Request) bool {
				select {
				case <-gate:
				case <-time.After(time.Minute): // the test fails below, not hangs
				}
				return false
			})
		case 80:
			s.HandleFunc(func(http.ResponseWriter, *http.Request) bool {
				openTop()
				return false
			})
		}
	}

	// The second sentry: a daemon's worker on its own engine.
	d2 := *w.Deps
	eng, err := sentry.NewEngine(&d2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wk, err := eng.NewWorker(ctx, engine.RoleDaemon, ctx, ctx)
	if err != nil {
		t.Fatal(err)
	}
	wk.Start()
	t.Cleanup(func() { cancel(); wk.Shutdown(0) })

	rep := w.Prime(t)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	var instances int
	w.QueryRow(t, `SELECT count(DISTINCT done_by) FROM sentry_work WHERE run_id = $1`, []any{rep.RunID}, &instances)
	if instances != 2 {
		t.Fatalf("%d sentries did the work, want 2", instances)
	}
	order := firstChecks(t, w, rep.RunID)
	if len(order) != len(rating) || (order[0] != top && order[1] != top) {
		t.Errorf("verified %v; want every mirror, the top-rated %d among the first two", order, top)
	}
	for i, id := range order {
		later := 0
		for _, other := range order[i+1:] {
			if rating[other] > rating[id] {
				later++
			}
		}
		if later > 1 {
			t.Errorf("mirror %d (rating %d) was verified before %d mirrors rated higher; order %v", id, rating[id], later, ratingsOf(order, rating))
		}
	}
}

func ratingsOf(ids []int, rating map[int]int) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = rating[id]
	}
	return out
}
