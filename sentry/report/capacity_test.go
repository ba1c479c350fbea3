package report_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/report"
)

func TestCapacityTimes(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	shares := []float64{0.5, 0.9, 1}
	tests := []struct {
		name    string
		mirrors []report.Reached
		want    []float64 // seconds per share; -1: not reached
	}{
		{"none", nil, []float64{-1, -1, -1}},
		{"every rating 0", []report.Reached{{Rating: 0, At: at(5)}}, []float64{-1, -1, -1}},
		{"one mirror holds all", []report.Reached{{Rating: 10, At: at(7)}}, []float64{7, 7, 7}},
		{"exactly half, then the rest", []report.Reached{{Rating: 5, At: at(30)}, {Rating: 5, At: at(10)}},
			[]float64{10, 30, 30}},
		{"nine tenths exactly", []report.Reached{{Rating: 9, At: at(3)}, {Rating: 1, At: at(60)}}, []float64{3, 3, 60}},
		{"one mirror short of all", []report.Reached{{Rating: 60, At: at(4)}, {Rating: 35, At: at(8)}, {Rating: 5}},
			[]float64{4, 8, -1}},
		{"in the order reached, not given", []report.Reached{{Rating: 1, At: at(1)}, {Rating: 1, At: at(2)}, {Rating: 98, At: at(50)}},
			[]float64{50, 50, 50}},
		{"negative ratings count as 0", []report.Reached{{Rating: -5, At: at(1)}, {Rating: 10, At: at(9)}}, []float64{9, 9, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := report.CapacityTimes(start, tt.mirrors, shares)
			if len(got) != len(shares) {
				t.Fatalf("got %d times", len(got))
			}
			for i, g := range got {
				switch {
				case g.Share != shares[i]:
					t.Errorf("share %d: %v", i, g.Share)
				case tt.want[i] < 0 && (g.Seconds != nil || g.At != nil):
					t.Errorf("%v: reached at %v s, want not reached", g.Share, *g.Seconds)
				case tt.want[i] >= 0 && (g.Seconds == nil || *g.Seconds != tt.want[i] || !g.At.Equal(at(int(tt.want[i])))):
					t.Errorf("%v: %v s (%v), want %v s", g.Share, g.Seconds, g.At, tt.want[i])
				}
			}
		})
	}
}

// TestReleaseCapacity: a release's capacity counts only the mirrors the
// redirector can offer (a region row, the product's scheme), and times
// each share from the first prime's start to the first verification of
// the last file of the mirrors that got it there, as recorded.
func TestReleaseCapacity(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	ids := map[string]int{}
	add := func(name string, rating int, regions []int, base func(url string) string) {
		s := world.Static(t, name, w.Rel)
		if name == "short" {
			s.Remove(w.Rel, "linux-x86_64/de/firefox-1.5.tar.bz2")
		}
		ids[name] = factory.Mirror(context.Background(), t, w.Pool(), &factory.MirrorOpts{Name: name,
			BaseURL: base(s.URL), Rating: factory.Ptr(rating), Regions: regions}).ID
	}
	same := func(u string) string { return u }
	add("big", 50, []int{world.Region}, same)
	add("mid", 30, []int{world.Region}, same)
	add("short", 20, []int{world.Region}, same) // lacks a file: never holds the release
	add("noregion", 40, nil, same)              // verified, but never offered
	// The redirector's scheme filter is LIKE 'http://%', case-sensitive:
	// never offered, though every HTTP client reaches it.
	add("upper", 40, []int{world.Region}, func(u string) string { return "HTTP://" + strings.TrimPrefix(u, "http://") })

	rep := w.Prime(t)
	for _, name := range []string{"big", "mid", "noregion", "upper"} {
		if s := world.MirrorSums(t, rep, name); s.State != "ok" {
			t.Fatalf("%s: %+v", name, s)
		}
	}
	rel, err := report.New(w.Pool(), nil).Release(context.Background(), "1.5")
	if err != nil {
		t.Fatal(err)
	}
	c := rel.Capacity
	if c == nil || c.StartedAt == nil || !c.StartedAt.Equal(*rel.FirstPrime) {
		t.Fatalf("capacity %+v, first prime %v", c, rel.FirstPrime)
	}
	if c.EligibleMirrors != 3 || c.EligibleRating != 100 || c.Complete != 2 || c.Share == nil || *c.Share != 0.8 {
		t.Errorf("eligible %d mirrors, rating %d, %d complete, share %v; want 3, 100 (big, mid, short), 2, 0.8",
			c.EligibleMirrors, c.EligibleRating, c.Complete, c.Share)
	}
	// When big and mid held every file, from the checks recorded.
	held := map[string]time.Time{}
	for name, id := range map[string]int{"big": ids["big"], "mid": ids["mid"]} {
		var last time.Time
		w.QueryRow(t, `SELECT max(at) FROM (SELECT min(checked_at) AS at FROM sentry_checks
			WHERE mirror_id = $1 AND result = 'ok' AND hashed GROUP BY path) f`, []any{id}, &last)
		held[name] = last
	}
	// Half is reached when big (50 of 100) held every file, whenever mid
	// (30) did; nine tenths never (short lacks a file).
	want := map[float64]*time.Time{0.5: ptr(held["big"]), 0.9: nil, 1: nil}
	for _, tm := range c.Times {
		wt := want[tm.Share]
		switch {
		case wt == nil && tm.At != nil:
			t.Errorf("%s reached at %v; want not reached (short lacks a file)", tm.Percent(), tm.At)
		case wt != nil && (tm.At == nil || !tm.At.Equal(*wt) || *tm.Seconds != wt.Sub(*c.StartedAt).Seconds()):
			t.Errorf("%s reached at %v (%v s); want %v", tm.Percent(), tm.At, tm.Seconds, *wt)
		}
	}
}

func ptr[T any](v T) *T { return &v }
