// Package world is the in-process world of sentry's tests: a migrated
// throwaway database (pgtest.NewDB) holding a bouncer product with its
// locations, a master serving the release (package localmirror), and the
// Deps of a sentry configured for fast local tests, told of every check
// it makes. Tests add mirrors (local servers registered with package
// factory) and run primes and sweeps through the wiring (sentry.Prime,
// sentry.Sweep):
//
//	w := world.New(t, nil)
//	_, id := w.Static(t, "good")
//	rep := w.Prime(t)
//	if w.Marks(t)[w.LocWin][id] != world.Good { ... }
//
// Its variants are options of it (Options.Sampled, Options.Release,
// Options.Config) or built on it (NewReportWorld). A package whose tests
// use it calls pgtest.Main from its TestMain.
package world

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/store"
	"github.com/mirrorsentry/sentry/sentry/sweep"
)

// The default world's locations: Firefox-1.5's win32 and linux builds, in
// every language of the product (en-US and de).
const (
	PathWin   = "/firefox/releases/1.5/win32/:lang/Firefox Setup 1.5.exe"
	PathLinux = "/firefox/releases/1.5/linux-x86_64/:lang/firefox-1.5.tar.bz2"
)

// Region is the region every mirror of a world is in
// (geoip_mirror_region_map): the redirector offers only mirrors with one.
const Region = 1

// SampledSeed is the sampler's seed of a sampled world: the blocks each
// check reads are the same at every run.
var SampledSeed = []byte("sentry sampled tests")

// SampledFileSize makes every file of the default release of a sampled
// world 128 blocks of the default 16 KiB, so that the default 32 sampled
// blocks are a quarter of each.
const SampledFileSize = 2 << 20

// Options are a world's variants; the zero value is the default world.
type Options struct {
	// Release is the release the master serves, with no bouncer rows:
	// the test adds its products and locations (package factory). nil:
	// Firefox 1.5 — win32 and linux-x86_64 files of 70 and 90 kB in en-US
	// and de — under product Firefox-1.5 (languages en-US and de) with the
	// two locations PathWin and PathLinux (LocWin, LocLin).
	Release *localmirror.Release
	// Sampled: verify.mode sampled (the default block size and sample),
	// a sampler of fixed seed (SampledSeed), and the default release's
	// files of SampledFileSize (a Release given keeps its files).
	Sampled bool
	// Config, when set, changes the configuration before it is validated
	// and the checks client built from it.
	Config func(*config.Config)
}

// World is what a test works with: the Deps of its sentry and the rest.
type World struct {
	Deps   *sentry.Deps
	Rel    *localmirror.Release
	Master *localmirror.Server
	Store  *store.Store
	// The default world's product, its operating system "win" and its
	// locations (zero with Options.Release).
	Product int
	WinOS   int
	LocWin  int
	LocLin  int
	// Logs is everything the sentry logged, at debug level.
	Logs *Buffer
	// Seen is every check the world's runs made, routine ones included
	// (those are only counted in the database).
	Seen *Seen
}

// New makes a world (nil opts: the default one). Everything it starts is
// stopped when the test ends.
func New(t testing.TB, opts *Options) *World {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	ctx := context.Background()
	rel := opts.Release
	if rel == nil {
		rel = &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
		for _, lang := range []string{"en-US", "de"} {
			p := "win32/" + lang + "/Firefox Setup 1.5.exe"
			rel.Files[p] = localmirror.Content(p, 70_000)
			p = "linux-x86_64/" + lang + "/firefox-1.5.tar.bz2"
			rel.Files[p] = localmirror.Content(p, 90_000)
		}
	}
	if opts.Sampled && opts.Release == nil {
		for _, p := range rel.Paths() {
			rel.Files[p] = localmirror.Content(p, SampledFileSize)
		}
	}
	master := Master(t, rel)

	dbURL := pgtest.NewDB(t)
	st, err := store.Open(ctx, dbURL, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	w := &World{Rel: rel, Master: master, Store: st, Logs: &Buffer{}, Seen: &Seen{}}
	if opts.Release == nil {
		pool := st.Pool()
		w.Product = factory.Product(ctx, t, pool, &factory.ProductOpts{Name: "Firefox-1.5", Langs: []string{"en-US", "de"}}).ID
		w.WinOS = factory.OS(ctx, t, pool, &factory.OSOpts{Name: "win"}).ID
		linux := factory.OS(ctx, t, pool, &factory.OSOpts{Name: "linux"}).ID
		w.LocWin = factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: w.Product, OSID: w.WinOS, Path: PathWin}).ID
		w.LocLin = factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: w.Product, OSID: linux, Path: PathLinux}).ID
	}

	cfg := config.Default()
	cfg.Database.URL = dbURL
	cfg.Master.URL = master.URL
	cfg.Releases.Dir = "/firefox/releases/{release}/"
	cfg.Releases.Products = []string{"Firefox-{release}", "Firefox-{release}-SSL"}
	cfg.Checks.Contact = "https://example.org/sentry-tests"
	cfg.Checks.Retries = 1
	// Local mirrors answer at once: the tests that are not about the
	// request rate should not wait for it.
	cfg.Checks.PerMirrorRate = 100_000
	cfg.Checks.RetryWaitMin = config.Duration(5 * time.Millisecond)
	cfg.Checks.RetryWaitMax = config.Duration(20 * time.Millisecond)
	// A stalled body is given up on soon, but not so soon that a loaded
	// machine running tests in parallel stalls a good one.
	cfg.Checks.BodyIdleTimeout = config.Duration(2 * time.Second)
	cfg.Checks.HeaderTimeout = config.Duration(5 * time.Second)
	cfg.Prime.Deadline = config.Duration(3 * time.Second)
	cfg.Prime.PollInterval = config.Duration(5 * time.Millisecond)
	cfg.Prime.PollMax = config.Duration(20 * time.Millisecond)
	cfg.Trigger.Secret = "trigger-secret-for-tests"
	var sampler *checks.Sampler
	if opts.Sampled {
		cfg.Verify.Mode = config.VerifySampled
		sampler = checks.NewSampler(SampledSeed)
	}
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(w.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	client, err := sentry.NewClient(&cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	w.Deps = &sentry.Deps{Config: &cfg, Store: st, Client: client, Logger: log, Observer: w.Seen, Sampler: sampler}
	return w
}

// Master starts a master serving rel (its files and manifest) until the
// test ends.
func Master(t testing.TB, rel *localmirror.Release) *localmirror.Server {
	t.Helper()
	m, err := localmirror.NewMaster(rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Static starts a mirror holding rel until the test ends; it is not
// registered in any database.
func Static(t testing.TB, name string, rel *localmirror.Release) *localmirror.Server {
	t.Helper()
	s, err := localmirror.NewStatic(name, rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Pool is the world's database.
func (w *World) Pool() *pgxpool.Pool { return w.Store.Pool() }

// Exec runs statements on the world's database.
func (w *World) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := w.Pool().Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// QueryRow scans the one row sql returns into dest.
func (w *World) QueryRow(t testing.TB, sql string, args []any, dest ...any) {
	t.Helper()
	if err := w.Pool().QueryRow(context.Background(), sql, args...).Scan(dest...); err != nil {
		t.Fatal(err)
	}
}

// Mirror registers an active mirror in the world's region (rating 10
// unless opts says otherwise) and returns its id.
func (w *World) Mirror(t testing.TB, opts *factory.MirrorOpts) int {
	t.Helper()
	o := *opts
	if o.Rating == nil {
		o.Rating = factory.Ptr(10)
	}
	if o.Regions == nil {
		o.Regions = []int{Region}
	}
	return factory.Mirror(context.Background(), t, w.Pool(), &o).ID
}

// AddMirror registers an active mirror at baseURL, with its settings row
// when settings is not nil, and returns its id.
func (w *World) AddMirror(t testing.TB, name, baseURL string, settings *factory.MirrorSettingsOpts) int {
	t.Helper()
	return w.Mirror(t, &factory.MirrorOpts{Name: name, BaseURL: baseURL, Settings: settings})
}

// Static starts a mirror holding the whole release and registers it.
func (w *World) Static(t testing.TB, name string) (*localmirror.Server, int) {
	t.Helper()
	s := Static(t, name, w.Rel)
	return s, w.AddMirror(t, name, s.URL, nil)
}

// Publish puts body at path on the master (nil removes it) and the
// manifest that says so: a respin, a new file, or a withdrawal.
func (w *World) Publish(path string, body []byte) {
	if body == nil {
		delete(w.Rel.Files, path)
		w.Master.Remove(w.Rel, path)
	} else {
		w.Rel.Files[path] = body
		w.Master.Put(w.Rel, path, body)
	}
	w.Master.Put(w.Rel, "SHA256SUMS", w.Rel.Manifest())
}

// Prime primes the world's release and fails the test when it cannot.
func (w *World) Prime(t testing.TB) *prime.Report {
	t.Helper()
	rep, err := sentry.Prime(context.Background(), w.Deps, sentry.PrimeOptions{Release: w.Rel.Name})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Sweep runs a light (or deep) sweep and fails the test when it cannot.
func (w *World) Sweep(t testing.TB, deep bool) *sweep.Report {
	t.Helper()
	rep, err := sentry.Sweep(context.Background(), w.Deps, sentry.SweepOptions{Deep: deep})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// MirrorSums is a mirror's row of a prime's report.
func MirrorSums(t testing.TB, rep *prime.Report, name string) prime.MirrorSums {
	t.Helper()
	for _, m := range rep.Mirrors {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("mirror %s not in report", name)
	return prime.MirrorSums{}
}

// SweepSums is a mirror's row of a sweep's report.
func SweepSums(t testing.TB, rep *sweep.Report, name string) sweep.MirrorSums {
	t.Helper()
	for _, m := range rep.Mirrors {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("mirror %s not in sweep report", name)
	return sweep.MirrorSums{}
}

// LastRun reads the newest run's outcome and reason.
func (w *World) LastRun(t testing.TB) (outcome, reason string) {
	t.Helper()
	w.QueryRow(t, `SELECT outcome, reason FROM sentry_runs ORDER BY id DESC LIMIT 1`, nil, &outcome, &reason)
	return outcome, reason
}

// CountRuns counts the runs of a kind (prime, sweep, deep_sweep).
func (w *World) CountRuns(t testing.TB, kind string) int {
	t.Helper()
	var n int
	w.QueryRow(t, `SELECT count(*) FROM sentry_runs WHERE kind = $1`, []any{kind}, &n)
	return n
}

// Sorted returns ids in increasing order.
func Sorted(ids ...int) []int { sort.Ints(ids); return ids }

// Seen records every check observers are told of.
type Seen struct {
	mu     sync.Mutex
	checks []observe.CheckEvent
}

func (s *Seen) CheckDone(c observe.CheckEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, c)
}
func (*Seen) StateChanged(observe.StateChangeEvent) {}
func (*Seen) GuardHeld(observe.GuardEvent)          {}
func (*Seen) RunFinished(observe.RunEvent)          {}

// All returns the checks seen so far, in the order they were made.
func (s *Seen) All() []observe.CheckEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.checks)
	slices.SortStableFunc(out, func(a, b observe.CheckEvent) int { return a.At.Compare(b.At) })
	return out
}

// Buffer is a bytes.Buffer safe for a logger writing while a test reads.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Len is how many bytes were written so far.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
