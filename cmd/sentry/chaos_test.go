package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/internal/mirrortest"
	"github.com/mirrorsentry/sentry/sentry/hook"
)

// The chaos test: three `sentry run` processes (vantage points us, eu and
// ap, source addresses 127.0.0.2-4), a `sentry prime` and a `sentry sweep`
// (vantage point cli, 127.0.0.5 and 127.0.0.6) on one PostgreSQL database
// and eight mirrors — six good copies, one missing a file, one serving a
// corrupt file — that are slow with every file and count the requests in
// flight. Scheduled sweeps run every two seconds throughout. Phases:
//
//	A. the release hook, signed once, sent to us and eu at once, and
//	   `sentry prime` of the same release beside them (which joins the
//	   hook's run), then `sentry sweep`, with the prime's downloads held at
//	   the mirrors until all of them and a scheduled sweep are running;
//	B. the connection of a sweep's judge terminated while it marks (a
//	   trigger holds its write to sentry_mirror_state);
//	C. a daemon SIGSTOPped while it holds mirrors of a sweep (their file
//	   requests held at the mirrors), until the others have taken them
//	   over, then resumed;
//	D. a daemon SIGKILLed while it holds mirrors of a sweep;
//
// then, over the whole test: requests in flight per mirror never above
// checks.per_mirror_concurrency, each file fetched (GET) once, and the
// bouncer marks those of a reference: the same mirrors primed and swept by
// one sentry on a database of its own.

const (
	// chaosCap is checks.per_mirror_concurrency of every sentry.
	chaosCap = 2
	// chaosFileDelay is how long a mirror takes over any file request, so
	// that requests that were not kept apart would be seen together.
	chaosFileDelay = 15 * time.Millisecond
	// chaosDeadline bounds every wait (CI machines are small and busy).
	chaosDeadline = 2 * time.Minute
	// chaosHookSecret is newWorld's hook.secret.
	chaosHookSecret = "hook-secret-of-the-tests"
)

// The sentries of the test, by name: vantage point and source address.
var (
	chaosDaemons = []string{"us", "eu", "ap"}
	chaosSources = map[string]string{"us": "127.0.0.2", "eu": "127.0.0.3", "ap": "127.0.0.4",
		"cli-prime": "127.0.0.5", "cli-sweep": "127.0.0.6"}
	chaosMirrorNames = []string{"ok1", "ok2", "ok3", "ok4", "ok5", "ok6", "missing", "corrupt"}
)

const (
	chaosMissingFile = "win32/xpi/lang-3.xpi" // absent from mirror "missing"
	chaosCorruptFile = "win32/xpi/lang-4.xpi" // one byte changed on mirror "corrupt"
)

// chaosMirrors starts the test's mirrors, empty (stock them with
// stockChaosMirrors once the release exists).
func chaosMirrors(t *testing.T) []*mirrortest.Server {
	t.Helper()
	rel := &mirrortest.Release{Name: "1.5", Dir: "/firefox/releases/1.5/"}
	var out []*mirrortest.Server
	for _, n := range chaosMirrorNames {
		m, err := mirrortest.NewStatic(n, rel)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		out = append(out, m)
	}
	return out
}

// stockChaosMirrors gives every mirror the release, but for the missing
// file of "missing" and the corrupt file of "corrupt".
func stockChaosMirrors(ms []*mirrortest.Server, rel *mirrortest.Release) {
	for _, m := range ms {
		m.PutRelease(rel)
		switch m.Name {
		case "missing":
			m.Remove(rel, chaosMissingFile)
		case "corrupt":
			m.Put(rel, chaosCorruptFile, mirrortest.Flip(rel.Files[chaosCorruptFile]))
		}
	}
}

// request is one request a mirror received.
type request struct {
	Mirror, Source, Method, Path string
	At                           time.Time
}

// traffic records every request to the mirrors and the requests in flight
// at each (from arrival until the answer is written).
type traffic struct {
	mu       sync.Mutex
	log      []request
	inFlight map[string]map[*request]bool
	max      map[string]int
	over     []string // what was in flight when a mirror had more than chaosCap
}

func newTraffic() *traffic {
	return &traffic{inFlight: map[string]map[*request]bool{}, max: map[string]int{}}
}

func (tr *traffic) observe(m *mirrortest.Server) {
	m.Observe(func(r *http.Request) func() {
		q := &request{Mirror: m.Name, Source: sourceOf(r), Method: r.Method, Path: r.URL.Path, At: time.Now()}
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.log = append(tr.log, *q)
		fl := tr.inFlight[m.Name]
		if fl == nil {
			fl = map[*request]bool{}
			tr.inFlight[m.Name] = fl
		}
		fl[q] = true
		tr.max[m.Name] = max(tr.max[m.Name], len(fl))
		if len(fl) > chaosCap && len(tr.over) < 20 {
			var in []string
			for f := range fl {
				in = append(in, fmt.Sprintf("%s %s %s %s (since %s)", f.At.Format("15:04:05.000"), who(f.Source),
					f.Method, f.Path, q.At.Sub(f.At).Round(time.Millisecond)))
			}
			sort.Strings(in)
			tr.over = append(tr.over, fmt.Sprintf("%s: %d requests in flight at %s:\n\t%s",
				m.Name, len(fl), q.At.Format("15:04:05.000"), strings.Join(in, "\n\t")))
		}
		return func() {
			tr.mu.Lock()
			delete(fl, q)
			tr.mu.Unlock()
		}
	})
}

// requests returns the requests recorded that keep says to keep.
func (tr *traffic) requests(keep func(request) bool) []request {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []request
	for _, q := range tr.log {
		if keep(q) {
			out = append(out, q)
		}
	}
	return out
}

func sourceOf(r *http.Request) string {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return host
}

// who names the sentry behind a source address.
func who(source string) string {
	for n, s := range chaosSources {
		if s == source {
			return n
		}
	}
	return source
}

// isFile: the request is for a file of the release (not the mirror's base
// URL, which every vantage point checks for reachability).
func isFile(r *http.Request) bool { return strings.Contains(r.URL.Path, "/firefox/releases/1.5/") }

// gate holds the file requests it matches while it is closed. A source
// freed (the process behind it was stopped by the test) has its held
// requests answered at once: a mirror goes on answering a paused client,
// whose answers wait in its socket.
type gate struct {
	match  func(r *http.Request) bool
	opened chan struct{}

	mu    sync.Mutex
	freed map[string]chan struct{}
	held  map[string]int // source → requests held now
	done  map[string]bool
}

func newChaosGate(match func(r *http.Request) bool) *gate {
	return &gate{match: match, opened: make(chan struct{}), freed: map[string]chan struct{}{},
		held: map[string]int{}, done: map[string]bool{}}
}

func (g *gate) freedCh(src string) chan struct{} {
	ch := g.freed[src]
	if ch == nil {
		ch = make(chan struct{})
		g.freed[src] = ch
	}
	return ch
}

func (g *gate) hold(r *http.Request) {
	if !g.match(r) {
		return
	}
	src := sourceOf(r)
	g.mu.Lock()
	free := g.freedCh(src)
	g.held[src]++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.held[src]--
		g.mu.Unlock()
	}()
	select {
	case <-g.opened:
	case <-free:
	case <-r.Context().Done():
	}
}

func (g *gate) heldFrom(src string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held[src]
}

func (g *gate) free(src string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.done[src] {
		g.done[src] = true
		close(g.freedCh(src))
	}
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.opened:
	default:
		close(g.opened)
	}
}

// chaos is the test's world: the database, the mirrors and the sentries.
type chaos struct {
	t       *testing.T
	w       *world
	db      *pgx.Conn
	mirrors []*mirrortest.Server
	names   map[int]string // mirror id → name
	tr      *traffic
	gate    atomic.Pointer[gate]
	cfgs    map[string]string
	procs   map[string]*daemonProc
	outs    map[string]*bytes.Buffer // a command's stdout
	ids     map[string]string        // daemon name → instance id
	ended   map[string]bool          // the test stopped or killed it
}

func newChaos(t *testing.T) *chaos {
	t.Helper()
	c := &chaos{t: t, tr: newTraffic(), names: map[int]string{}, cfgs: map[string]string{},
		procs: map[string]*daemonProc{}, outs: map[string]*bytes.Buffer{}, ids: map[string]string{}, ended: map[string]bool{}}
	c.mirrors = chaosMirrors(t)
	for _, m := range c.mirrors {
		c.tr.observe(m)
		// A slow mirror: every file request takes chaosFileDelay, after
		// waiting at the gate of the phase, if any.
		m.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
			if !isFile(r) {
				return false
			}
			if g := c.gate.Load(); g != nil {
				g.hold(r)
			}
			tm := time.NewTimer(chaosFileDelay)
			defer tm.Stop()
			select {
			case <-tm.C:
			case <-r.Context().Done():
			}
			return false
		})
	}
	c.w = newWorld(t, "schedule:\n  sweep: \"@every 2s\"\n  deep_sweep: \"0 0 1 1 *\"\n", c.mirrors...)
	stockChaosMirrors(c.mirrors, c.w.rel)
	db, err := pgx.Connect(context.Background(), c.w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	c.db = db
	t.Cleanup(func() { db.Close(context.Background()) })
	rows, err := db.Query(context.Background(), `SELECT id, name FROM mirror_mirrors`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		ID   int
		Name string
	}]))(t) {
		c.names[r.ID] = r.Name
	}
	// Phase B's judge is held, while chaos_hold says so, in a trigger on
	// the mirror states only a sweep's judge writes.
	c.exec(`CREATE TABLE chaos_hold (hold boolean NOT NULL);
		INSERT INTO chaos_hold VALUES (false);
		CREATE FUNCTION chaos_hold_judge() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			WHILE (SELECT hold FROM chaos_hold) LOOP
				PERFORM pg_sleep(0.05);
			END LOOP;
			RETURN NEW;
		END $$;
		CREATE TRIGGER chaos_hold_judge BEFORE INSERT OR UPDATE ON sentry_mirror_state
			FOR EACH ROW EXECUTE FUNCTION chaos_hold_judge()`)
	// A process stopped in the middle of a transaction would keep its row
	// locks (and the advisory locks of a claim) until it resumed, and the
	// others could not take its mirrors over (SKIP LOCKED): the server
	// ends such sessions, as a production server would be configured to.
	var dbName string
	c.query(`SELECT current_database()`, nil, &dbName)
	c.exec(fmt.Sprintf(`ALTER DATABASE %s SET idle_in_transaction_session_timeout = '2s'`, pgx.Identifier{dbName}.Sanitize()))

	for _, d := range chaosDaemons {
		c.cfgs[d] = c.config(d, d, chaosSources[d])
	}
	c.cfgs["cli-prime"] = c.config("cli-prime", "cli", chaosSources["cli-prime"])
	c.cfgs["cli-sweep"] = c.config("cli-sweep", "cli", chaosSources["cli-sweep"])
	return c
}

func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// config writes the config of one sentry of the test: the world's, with
// its vantage point and source address, chaosCap requests per mirror (and
// room for two mirrors at a time), short leases, and a mirror's state
// following a single sweep.
func (c *chaos) config(name, vantage, source string) string {
	c.t.Helper()
	base, err := os.ReadFile(c.w.cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := strings.Replace(string(base), "checks:\n", fmt.Sprintf(
		"checks:\n  source_address: %s\n  concurrency: %d\n  per_mirror_concurrency: %d\n  header_timeout: 60s\n",
		source, 2*chaosCap, chaosCap), 1)
	cfg += fmt.Sprintf("vantage: %s\ncluster:\n  lease: 3s\n  poll: 200ms\nstate:\n  down_after: 1\n  up_after: 1\n", vantage)
	path := filepath.Join(c.t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

func (c *chaos) exec(sql string, args ...any) {
	c.t.Helper()
	if _, err := c.db.Exec(context.Background(), sql, args...); err != nil {
		c.fatalf("%s: %v", sql, err)
	}
}

