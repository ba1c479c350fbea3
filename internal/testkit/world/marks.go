package world

import (
	"context"
	"net/http"
	"sort"
	"sync/atomic"
	"testing"

	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// Mark is a location's flags on a mirror (mirror_location_mirror_map).
type Mark struct {
	Active, Healthy bool
}

// The marks as docs/FAULTS.md words them.
var (
	Good      = Mark{Active: true, Healthy: true}   // offered
	Off       = Mark{Active: false, Healthy: false} // missing or wrong
	Unhealthy = Mark{Active: true, Healthy: false}  // transient trouble: the fallback
)

// Marks returns mirror_location_mirror_map as location → mirror → mark.
func (w *World) Marks(t testing.TB) map[int]map[int]Mark {
	t.Helper()
	rows, err := w.Pool().Query(context.Background(), `SELECT location_id, mirror_id, active, healthy FROM mirror_location_mirror_map`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int]map[int]Mark{}
	for rows.Next() {
		var loc, m int
		var r Mark
		if err := rows.Scan(&loc, &m, &r.Active, &r.Healthy); err != nil {
			t.Fatal(err)
		}
		if out[loc] == nil {
			out[loc] = map[int]Mark{}
		}
		out[loc][m] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// SameMarks reports whether two Marks hold the same rows.
func SameMarks(a, b map[int]map[int]Mark) bool {
	if len(a) != len(b) {
		return false
	}
	for loc, am := range a {
		bm := b[loc]
		if len(am) != len(bm) {
			return false
		}
		for m, r := range am {
			if bm[m] != r {
				return false
			}
		}
	}
	return true
}

// Redirector runs the redirector's query of DESIGN.md section 2 for a
// location (the scheme left aside): the ids of the mirrors it picks from
// with healthy, in increasing order.
func (w *World) Redirector(t testing.TB, location int, healthy bool) []int {
	t.Helper()
	rows, err := w.Pool().Query(context.Background(), `
		SELECT m.id, m.baseurl, m.rating
		FROM mirror_mirrors m
		JOIN mirror_location_mirror_map lmm ON lmm.mirror_id = m.id
		JOIN geoip_mirror_region_map g ON g.mirror_id = m.id
		WHERE lmm.location_id = $1 AND m.active AND lmm.active AND lmm.healthy = $2
		ORDER BY m.rating`, location, healthy)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int
	for rows.Next() {
		var id, rating int
		var base string
		if err := rows.Scan(&id, &base, &rating); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Ints(ids)
	return ids
}

// Offered is what the redirector offers for a location: the mirrors it
// tries first (healthy) and those it falls back to.
func (w *World) Offered(t testing.TB, location int) (first, fallback []int) {
	t.Helper()
	return w.Redirector(t, location, true), w.Redirector(t, location, false)
}

// CheckDetails returns the result and detail ("result: detail") of every
// recorded check a run made of path, by mirror name.
func (w *World) CheckDetails(t testing.TB, run int64, path string) map[string][]string {
	t.Helper()
	rows, err := w.Pool().Query(context.Background(), `SELECT m.name, c.result || ': ' || c.detail
		FROM sentry_checks c JOIN mirror_mirrors m ON m.id = c.mirror_id WHERE c.run_id = $1 AND c.path = $2 ORDER BY c.id`, run, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var name, d string
		if err := rows.Scan(&name, &d); err != nil {
			t.Fatal(err)
		}
		out[name] = append(out[name], d)
	}
	return out
}

// Failing makes s answer 503 to everything while the returned switch is
// on.
func Failing(s *localmirror.Server) *atomic.Bool {
	var on atomic.Bool
	s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if !on.Load() {
			return false
		}
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return true
	})
	return &on
}
