package world

import (
	"sync/atomic"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

// ReportWorld is a database filled by real primes and sweeps against local
// mirrors, for the reports, the status page, the metrics and the
// notifications: two good mirrors, one serving a corrupt file, one
// missing a file, and one that answers 503 from the first sweep on (down
// after two). It ran a prime, a light sweep and a deep sweep.
type ReportWorld struct {
	*World
	IDs     map[string]int
	Ratings map[string]int
	Servers map[string]*localmirror.Server
	Flaky   *atomic.Bool // set: the flaky mirror answers 503
}

// The report world's mirrors, and the files they lack or serve corrupt.
const (
	CorruptFile = "win32/de/Firefox Setup 1.5.exe"         // on "corrupt"
	MissingFile = "linux-x86_64/en-US/firefox-1.5.tar.bz2" // on "missing"
)

// NewReportWorld makes a report world. Each of observers, given the Deps,
// returns an observer the runs tell besides the world's own.
func NewReportWorld(t testing.TB, observers ...func(*sentry.Deps) observe.Observer) *ReportWorld {
	t.Helper()
	w := New(t, nil)
	var obs []observe.Observer
	for _, build := range observers {
		obs = append(obs, build(w.Deps))
	}
	w.Deps.Observer = observe.All(append(obs, w.Seen)...)
	rw := &ReportWorld{World: w, IDs: map[string]int{}, Servers: map[string]*localmirror.Server{}, Ratings: map[string]int{
		"good1": 50, "good2": 30, "corrupt": 10, "missing": 5, "flaky": 5,
	}}
	for _, name := range []string{"good1", "good2", "corrupt", "missing", "flaky"} {
		s := Static(t, name, w.Rel)
		rw.IDs[name] = w.Mirror(t, &factory.MirrorOpts{Name: name, BaseURL: s.URL, Rating: factory.Ptr(rw.Ratings[name])})
		rw.Servers[name] = s
		switch name {
		case "corrupt":
			s.Put(w.Rel, CorruptFile, localmirror.Flip(w.Rel.Files[CorruptFile]))
		case "missing":
			s.Remove(w.Rel, MissingFile)
		case "flaky":
			rw.Flaky = Failing(s)
		}
	}
	w.Prime(t)
	rw.Flaky.Store(true) // from the first sweep on
	w.Sweep(t, false)
	w.Sweep(t, true)
	return rw
}
