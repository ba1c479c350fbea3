package main

import (
	"bufio"
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
	"regexp"
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

	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/hook"
)

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
func chaosMirrors(t *testing.T) []*localmirror.Server {
	t.Helper()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/"}
	var out []*localmirror.Server
	for _, n := range chaosMirrorNames {
		m, err := localmirror.NewStatic(n, rel)
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
func stockChaosMirrors(ms []*localmirror.Server, rel *localmirror.Release) {
	for _, m := range ms {
		m.PutRelease(rel)
		switch m.Name {
		case "missing":
			m.Remove(rel, chaosMissingFile)
		case "corrupt":
			m.Put(rel, chaosCorruptFile, localmirror.Flip(rel.Files[chaosCorruptFile]))
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

func (tr *traffic) observe(m *localmirror.Server) {
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

// chaosGate holds the file requests it matches while it is closed (or
// until the client goes away), and counts those it holds by source
// address.
type chaosGate struct {
	match  func(mirror string, r *http.Request) bool
	opened chan struct{}
	once   sync.Once

	mu   sync.Mutex
	held map[string]int // source → requests held now
}

func newChaosGate(match func(mirror string, r *http.Request) bool) *chaosGate {
	return &chaosGate{match: match, opened: make(chan struct{}), held: map[string]int{}}
}

func (g *chaosGate) hold(mirror string, r *http.Request) {
	if !g.match(mirror, r) {
		return
	}
	src := sourceOf(r)
	g.mu.Lock()
	g.held[src]++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.held[src]--
		g.mu.Unlock()
	}()
	select {
	case <-g.opened:
	case <-r.Context().Done():
	}
}

func (g *chaosGate) heldFrom(src string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held[src]
}

func (g *chaosGate) open() { g.once.Do(func() { close(g.opened) }) }

// chaos is the test's world: the database, the mirrors and the sentries.
type chaos struct {
	t       *testing.T
	w       *world
	db      *pgx.Conn
	mirrors []*localmirror.Server
	names   map[int]string // mirror id → name
	tr      *traffic
	gate    atomic.Pointer[chaosGate]
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
				g.hold(m.Name, r)
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
	stockChaosMirrors(c.mirrors, c.w.Rel)
	db, err := pgx.Connect(context.Background(), c.w.DBURL)
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
	c.one(`SELECT current_database()`, nil, &dbName)
	c.exec(fmt.Sprintf(`ALTER DATABASE %s SET idle_in_transaction_session_timeout = '2s'`, pgx.Identifier{dbName}.Sanitize()))

	for _, d := range chaosDaemons {
		c.cfgs[d] = c.config(d, d, chaosSources[d])
	}
	c.cfgs["cli-prime"] = c.config("cli-prime", "cli", chaosSources["cli-prime"])
	c.cfgs["cli-sweep"] = c.config("cli-sweep", "cli", chaosSources["cli-sweep"])
	return c
}

// must returns v, failing t when err is set: must(pgx.CollectRows(...))(t).
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
	base, err := os.ReadFile(c.w.Config)
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

// one scans the row of sql into dest and reports whether there was one.
func (c *chaos) one(sql string, args []any, dest ...any) bool {
	c.t.Helper()
	err := c.db.QueryRow(context.Background(), sql, args...).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return false
	}
	if err != nil {
		c.fatalf("%s: %v", sql, err)
	}
	return true
}

// fatalf fails the test with the state of the runs, their work and the
// sentries' logs.
func (c *chaos) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf(format+"\n\n%s", append(args, c.dump())...)
}

func (c *chaos) errorf(format string, args ...any) {
	c.t.Helper()
	c.t.Errorf(format+"\n\n%s", append(args, c.dump())...)
}

// dump describes the recent runs, their work rows, the instances and the
// end of every sentry's log (on a connection of its own: the test's may
// be what failed).
func (c *chaos) dump() string {
	var b strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.w.DBURL)
	if err != nil {
		fmt.Fprintf(&b, "(database: %v)\n", err)
	} else {
		defer conn.Close(ctx)
		for _, q := range []struct{ title, sql string }{
			{"sentry_runs (latest first)", `SELECT id, kind, slot, key, outcome, ready, judge_by, judge_until, judge_attempts,
				judge_error, reason, started_at, finished_at, params->'files' AS files FROM sentry_runs ORDER BY id DESC LIMIT 15`},
			{"sentry_work of the 4 latest runs", `SELECT run_id, mirror_id, claimed_by, lease_until, claims, files_done, done,
				done_by, done_at, needs, vantages, not_from FROM sentry_work
				WHERE run_id IN (SELECT id FROM sentry_runs ORDER BY id DESC LIMIT 4) ORDER BY run_id, mirror_id`},
			{"sentry_instances", `SELECT id, vantage, role, pid, last_seen, stopped_at, now() AS now FROM sentry_instances ORDER BY started_at`},
			{"mirrors", `SELECT id, name FROM mirror_mirrors ORDER BY id`},
		} {
			fmt.Fprintf(&b, "--- %s\n", q.title)
			rows, err := conn.Query(ctx, `SELECT row_to_json(x)::text FROM (`+q.sql+`) x`)
			if err != nil {
				fmt.Fprintf(&b, "(%v)\n", err)
				continue
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				fmt.Fprintf(&b, "(%v)\n", err)
			}
			for _, l := range lines {
				b.WriteString(l + "\n")
			}
		}
	}
	names := make([]string, 0, len(c.procs))
	for n := range c.procs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		lines := strings.Split(strings.TrimRight(c.procs[n].logText(), "\n"), "\n")
		if len(lines) > 150 {
			lines = append([]string{fmt.Sprintf("%s: (%d lines before)", n, len(lines)-150)}, lines[len(lines)-150:]...)
		}
		fmt.Fprintf(&b, "--- log of %s (%s, instance %s)\n%s\n", n, chaosSources[n], c.ids[n], strings.Join(lines, "\n"))
		select {
		case <-c.procs[n].exited:
			if out := c.outs[n]; out != nil && out.Len() > 0 {
				fmt.Fprintf(&b, "--- stdout of %s (exited: %v)\n%s\n", n, c.procs[n].err, out)
			}
		default:
		}
	}
	return b.String()
}

// wait polls cond until it holds, failing after chaosDeadline, or as soon
// as a sentry the test did not stop exits (a command exiting 0 is fine).
func (c *chaos) wait(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(chaosDeadline)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			c.fatalf("timed out after %s waiting for %s", chaosDeadline, what)
		}
		for n, p := range c.procs {
			select {
			case <-p.exited:
				if c.ended[n] || (!slices.Contains(chaosDaemons, n) && p.cmd.ProcessState.Success()) {
					continue
				}
				c.fatalf("%s exited (%v) while waiting for %s", n, p.err, what)
			default:
			}
		}
		<-tick.C
	}
}

// start starts a sentry: a daemon (args "run") or a command, whose stdout
// is kept in c.outs[name] (read it once it exited).
func (c *chaos) start(name string, args ...string) *daemonProc {
	c.t.Helper()
	cmd := exec.Command(binary(c.t), append(args, "--config", c.cfgs[name])...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	out := &bytes.Buffer{}
	cmd.Stdout = out
	if args[0] == "run" {
		cmd.Stdout = io.Discard
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, lines: make(chan string, 1), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(name + ": " + sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	c.t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	c.procs[name], c.outs[name] = p, out
	return p
}

// daemonID is the name of the daemon whose instance id is id, "" for none.
func (c *chaos) daemonID(id string) string {
	for n, i := range c.ids {
		if i == id {
			return n
		}
	}
	return ""
}

// liveIDs are the instance ids of the daemons the test has not stopped.
func (c *chaos) liveIDs() []string {
	var out []string
	for _, n := range chaosDaemons {
		if !c.ended[n] {
			out = append(out, c.ids[n])
		}
	}
	return out
}

func (c *chaos) startDaemons() {
	c.t.Helper()
	for _, d := range chaosDaemons {
		c.start(d, "run")
	}
	c.wait("three daemons registered and listening", func() bool {
		rows, err := c.db.Query(context.Background(), `SELECT vantage, id FROM sentry_instances WHERE role = 'daemon' AND stopped_at IS NULL`)
		if err != nil {
			c.fatalf("%v", err)
		}
		for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ V, ID string }]))(c.t) {
			c.ids[r.V] = r.ID
		}
		for _, d := range chaosDaemons {
			if c.ids[d] == "" || !strings.Contains(c.procs[d].logText(), "sentry run started") {
				return false
			}
		}
		return true
	})
}

// hookAnswer is a daemon's answer to the release hook.
type hookAnswer struct {
	daemon string
	code   int
	body   string
	runID  int64
	err    error
}

func postHook(addr, ts string, body []byte) (code int, answer string, runID int64, err error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/release", bytes.NewReader(body))
	if err != nil {
		return 0, "", 0, err
	}
	req.Header.Set("X-Sentry-Timestamp", ts)
	req.Header.Set("X-Sentry-Signature", hook.Sign([]byte(chaosHookSecret), ts, body))
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var r struct {
		RunID int64 `json:"run_id"`
	}
	_ = json.Unmarshal(b, &r)
	return resp.StatusCode, string(b), r.RunID, nil
}

// closeGate installs a closed gate for the requests match accepts (and
// opens the one it replaces).
func (c *chaos) closeGate(match func(mirror string, r *http.Request) bool) *chaosGate {
	g := newChaosGate(match)
	if old := c.gate.Swap(g); old != nil {
		old.open()
	}
	return g
}

// waitEnded waits for run id to end and returns its outcome and reason.
func (c *chaos) waitEnded(what string, id int64) (outcome, reason string) {
	c.t.Helper()
	c.wait(fmt.Sprintf("%s (run %d) to end", what, id), func() bool {
		c.one(`SELECT outcome, reason FROM sentry_runs WHERE id = $1`, []any{id}, &outcome, &reason)
		return outcome != "running"
	})
	return outcome, reason
}

// primeSummary is what the test reads of `sentry prime --format json`.
type primeSummary struct {
	RunID   int64  `json:"run_id"`
	Outcome string `json:"outcome"`
	Joined  bool   `json:"joined"`
	Mirrors []struct {
		Name     string         `json:"name"`
		State    string         `json:"state"`
		FilesOK  int            `json:"files_ok"`
		Failures map[string]int `json:"failures"`
	} `json:"mirrors"`
}

// Phase A: the hook sent to two daemons, a CLI prime of the same release
// beside them, a CLI sweep and the scheduled sweeps, all at once. It
// returns the prime's run id.
func (c *chaos) primeFromEverywhere() int64 {
	c.t.Helper()
	t := c.t
	// The prime's downloads wait until everything runs.
	g := c.closeGate(func(_ string, r *http.Request) bool { return isFile(r) && r.Method == http.MethodGet })

	body := []byte(`{"release": "1.5"}`)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	answers := make(chan hookAnswer, 2)
	for _, d := range []string{"us", "eu"} {
		addr := c.procs[d].listenAddr(t)
		go func() {
			a := hookAnswer{daemon: d}
			a.code, a.body, a.runID, a.err = postHook(addr, ts, body)
			answers <- a
		}()
	}
	byCode := map[int]hookAnswer{}
	for range 2 {
		a := <-answers // bounded by the client's timeout
		if a.err != nil {
			c.fatalf("release hook to %s: %v", a.daemon, a.err)
		}
		byCode[a.code] = a
	}
	accepted, busy := byCode[http.StatusAccepted], byCode[http.StatusConflict]
	if len(byCode) != 2 || accepted.runID == 0 || busy.runID != accepted.runID {
		c.fatalf("the same hook sent to us and eu: answers %+v; want one 202 and one 409 with the same run id", byCode)
	}
	prime := accepted.runID
	t.Logf("hook: %s answered 202 (run %d), %s 409 %s", accepted.daemon, prime, busy.daemon, strings.TrimSpace(busy.body))
	var kind, key string
	c.one(`SELECT kind, coalesce(key, '') FROM sentry_runs WHERE id = $1`, []any{prime}, &kind, &key)
	if kind != "prime" || key != "prime 1.5" {
		c.fatalf("run %d is a %s with key %q; want the prime of 1.5", prime, kind, key)
	}
	c.wait("the prime planned", func() bool {
		var ready bool
		c.one(`SELECT ready FROM sentry_runs WHERE id = $1`, []any{prime}, &ready)
		return ready
	})

	// The CLI prime of the same release joins the hook's run.
	cli := c.start("cli-prime", "prime", "--release", "1.5", "--format", "json")
	c.wait("sentry prime to join the hook's prime", func() bool {
		return strings.Contains(cli.logText(), "joining the running run")
	})
	for _, l := range grepLines(cli.logText(), "joining the running run") {
		if m := regexp.MustCompile(`\brun=(\d+)\b`).FindStringSubmatch(l); m == nil || m[1] != strconv.FormatInt(prime, 10) {
			c.fatalf("sentry prime joined another run than the hook's %d: %s", prime, l)
		}
	}
	// A manual sweep, which runs beside the scheduled ones.
	c.start("cli-sweep", "sweep", "--format", "json")
	var manual, scheduled int64
	c.wait("the manual sweep planned with the release's files, and a scheduled sweep running", func() bool {
		c.one(`SELECT coalesce(max(id), 0) FROM sentry_runs WHERE kind = 'sweep' AND slot IS NULL AND ready
			AND outcome = 'running' AND (params->>'files')::int > 0`, nil, &manual)
		c.one(`SELECT coalesce(max(id), 0) FROM sentry_runs WHERE kind = 'sweep' AND slot IS NOT NULL AND ready
			AND outcome = 'running'`, nil, &scheduled)
		return manual != 0 && scheduled != 0
	})
	var primeRunning bool
	c.one(`SELECT outcome = 'running' FROM sentry_runs WHERE id = $1`, []any{prime}, &primeRunning)
	if !primeRunning {
		c.fatalf("the prime %d ended while its downloads were held", prime)
	}
	t.Logf("phase A: prime %d, manual sweep %d and scheduled sweep %d running; downloads let go", prime, manual, scheduled)
	g.open()

	for _, n := range []string{"cli-prime", "cli-sweep"} {
		p := c.procs[n]
		c.wait(n+" to exit", func() bool {
			select {
			case <-p.exited:
				return true
			default:
				return false
			}
		})
	}
	var sum primeSummary
	if err := json.Unmarshal(c.outs["cli-prime"].Bytes(), &sum); err != nil {
		c.fatalf("sentry prime output: %v\n%s", err, c.outs["cli-prime"])
	}
	if sum.RunID != prime || !sum.Joined || sum.Outcome != "completed" || len(sum.Mirrors) != len(chaosMirrorNames) {
		c.fatalf("sentry prime summary: run %d, joined %v, %s, %d mirrors; want run %d (the hook's), joined, completed, %d mirrors:\n%s",
			sum.RunID, sum.Joined, sum.Outcome, len(sum.Mirrors), prime, len(chaosMirrorNames), c.outs["cli-prime"])
	}
	for _, m := range sum.Mirrors {
		want := "ok"
		if m.Name == "missing" || m.Name == "corrupt" {
			want = "partial"
		}
		if m.State != want {
			t.Errorf("sentry prime summary: %s is %s (%d ok, failures %v), want %s", m.Name, m.State, m.FilesOK, m.Failures, want)
		}
	}
	var sw struct {
		RunID   int64  `json:"run_id"`
		Outcome string `json:"outcome"`
		Files   int    `json:"files"`
	}
	if err := json.Unmarshal(c.outs["cli-sweep"].Bytes(), &sw); err != nil {
		c.fatalf("sentry sweep output: %v\n%s", err, c.outs["cli-sweep"])
	}
	if sw.RunID != manual || sw.Outcome != "completed" || sw.Files != len(c.w.Rel.Files) {
		c.errorf("sentry sweep summary: run %d, %s, %d files; want run %d, completed, %d files",
			sw.RunID, sw.Outcome, sw.Files, manual, len(c.w.Rel.Files))
	}
	if outcome, reason := c.waitEnded("the prime", prime); outcome != "completed" {
		c.errorf("prime %d: %s (%s), want completed", prime, outcome, reason)
	}
	// They did run at once.
	var overlapping int
	c.one(`SELECT count(*) FROM sentry_runs p, sentry_runs s WHERE p.id = $1 AND s.id IN ($2, $3)
		AND s.started_at < coalesce(p.finished_at, now()) AND p.started_at < coalesce(s.finished_at, now())`,
		[]any{prime, manual, scheduled}, &overlapping)
	if overlapping != 2 {
		c.errorf("the prime %d overlapped %d of the sweeps %d (manual) and %d (scheduled), want both", prime, overlapping, manual, scheduled)
	}
	return prime
}

// Phase B: the connection of a sweep's judge is terminated while it
// writes a mirror's state; the sweep still ends, and the next scheduled
// sweep runs.
func (c *chaos) killJudgeConnection() {
	c.t.Helper()
	logsBefore := c.logLens()
	c.exec(`UPDATE chaos_hold SET hold = true`)
	var judged int64
	var pid int
	var judge string
	c.wait("a sweep's judge held writing a mirror state, and its connection terminated", func() bool {
		if !c.one(`SELECT a.pid, r.id, r.judge_by FROM pg_stat_activity a, sentry_runs r
			WHERE a.datname = current_database() AND a.wait_event = 'PgSleep' AND a.query ILIKE '%sentry_mirror_state%'
			  AND r.outcome = 'running' AND r.judge_by IS NOT NULL AND r.kind = 'sweep'
			ORDER BY r.id LIMIT 1`, nil, &pid, &judged, &judge) {
			return false
		}
		var killed bool
		c.one(`SELECT pg_terminate_backend($1)`, []any{pid}, &killed)
		return killed // false: that backend had gone already; wait for the judge's next try
	})
	c.exec(`UPDATE chaos_hold SET hold = false`)
	c.t.Logf("phase B: terminated backend %d of %s judging sweep %d", pid, c.daemonID(judge), judged)
	if outcome, reason := c.waitEnded("the sweep whose judge lost its connection", judged); outcome != "completed" {
		c.errorf("sweep %d, whose judge's connection was terminated: %s (%s), want completed (the judgement retried)", judged, outcome, reason)
	}
	var next int64
	c.wait(fmt.Sprintf("a scheduled sweep after %d to complete", judged), func() bool {
		return c.one(`SELECT id FROM sentry_runs WHERE slot IS NOT NULL AND id > $1 AND outcome = 'completed' ORDER BY id LIMIT 1`,
			[]any{judged}, &next)
	})
	// The termination hit the judge's own connection.
	logs := c.logsSince(logsBefore)
	if hit := grepLines(logs, "57P01", "terminating connection due to administrator command"); len(hit) == 0 {
		c.errorf("no sentry logged the terminated connection (SQLSTATE 57P01) of sweep %d's judge:\n%s", judged, logs)
	} else {
		c.t.Logf("phase B: %s", strings.Join(hit[:min(len(hit), 3)], "\n\t"))
	}
	c.t.Logf("phase B: sweep %d completed, then scheduled sweep %d", judged, next)
}

// logLens is where every log ends now.
func (c *chaos) logLens() map[string]int {
	out := map[string]int{}
	for n, p := range c.procs {
		out[n] = len(p.logText())
	}
	return out
}

// logsSince is what the sentries logged since logLens returned from.
func (c *chaos) logsSince(from map[string]int) string {
	var b strings.Builder
	for _, n := range append(chaosDaemons, "cli-prime", "cli-sweep") {
		if p := c.procs[n]; p != nil {
			b.WriteString(p.logText()[from[n]:])
		}
	}
	return b.String()
}

// heldRows are the rows of a run an instance holds with files still to
// do: mirror id → claims (the token it holds them with).
func (c *chaos) heldRows(run int64, instance string) map[int]int {
	c.t.Helper()
	rows, err := c.db.Query(context.Background(), `SELECT mirror_id, claims FROM sentry_work
		WHERE run_id = $1 AND claimed_by = $2 AND NOT files_done AND NOT done`, run, instance)
	if err != nil {
		c.fatalf("%v", err)
	}
	out := map[int]int{}
	for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ M, Claims int }]))(c.t) {
		out[r.M] = r.Claims
	}
	return out
}

// sweepHeldAtGate waits for a scheduled sweep, begun after g closed,
// with files to check, some mirrors of which a live daemon holds with all
// its file requests for them waiting at g (chaosCap per mirror: so that
// it has none on its way, between the lease guard and the mirror), and
// returns the sweep and the daemon's name.
func (c *chaos) sweepHeldAtGate(g *chaosGate) (int64, string) {
	c.t.Helper()
	var after int64
	c.one(`SELECT coalesce(max(id), 0) FROM sentry_runs`, nil, &after)
	var run int64
	var holder string
	c.wait(fmt.Sprintf("a scheduled sweep after %d with mirrors held by a daemon whose file requests all wait", after), func() bool {
		rows, err := c.db.Query(context.Background(), `SELECT w.run_id, w.claimed_by, count(*) FROM sentry_work w JOIN sentry_runs r ON r.id = w.run_id
			WHERE r.slot IS NOT NULL AND r.id > $1 AND r.outcome = 'running' AND r.ready AND (r.params->>'files')::int > 0
			  AND NOT w.files_done AND NOT w.done AND w.claimed_by = ANY ($2) AND w.lease_until > now()
			GROUP BY w.run_id, w.claimed_by ORDER BY w.run_id, w.claimed_by`, after, c.liveIDs())
		if err != nil {
			c.fatalf("%v", err)
		}
		for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
			Run  int64
			By   string
			Rows int
		}]))(c.t) {
			if d := c.daemonID(r.By); d != "" && g.heldFrom(chaosSources[d]) == chaosCap*r.Rows {
				run, holder = r.Run, d
				return true
			}
		}
		return false
	})
	return run, holder
}

func (c *chaos) mirrorNames(ids map[int]int) []string {
	var out []string
	for id := range ids {
		out = append(out, c.names[id])
	}
	sort.Strings(out)
	return out
}

// Phase C: a daemon holding mirrors of a sweep is stopped (SIGSTOP) until
// the others have taken them over, then resumed: it sends no file request
// to those mirrors.
func (c *chaos) stopPastLease() {
	c.t.Helper()
	t := c.t
	g := c.closeGate(func(_ string, r *http.Request) bool { return isFile(r) })
	gatedAt := time.Now()
	run, d := c.sweepHeldAtGate(g)
	p, id, src := c.procs[d], c.ids[d], chaosSources[d]
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	c.wait(d+" stopped", func() bool {
		st, err := procState(pid)
		if err != nil {
			c.fatalf("%v", err)
		}
		return st == 'T' || st == 't'
	})
	stoppedAt := time.Now()
	held := c.heldRows(run, id)
	takenOver := c.mirrorNames(held)
	if len(held) == 0 {
		c.fatalf("%s held no mirror of sweep %d with files to do once stopped", d, run)
	}
	t.Logf("phase C: %s stopped holding mirrors %v of sweep %d", d, takenOver, run)
	// Every request is answered now — what the stopped one asked before it
	// stopped (the answers wait in its sockets), and the others', so that
	// they have room to take its mirrors over — but the others' file
	// requests to those mirrors: the sweep does not end before it is
	// resumed.
	g = c.closeGate(func(mirror string, r *http.Request) bool {
		return isFile(r) && slices.Contains(takenOver, mirror) && sourceOf(r) != src
	})
	// It had files of them still to ask for (the gate let it ask for the
	// first ones only): finishing them once resumed would need requests.
	for mid := range held {
		asked := map[string]bool{}
		for _, q := range c.tr.requests(func(q request) bool {
			return q.Source == src && q.Mirror == c.names[mid] && strings.Contains(q.Path, c.w.Rel.Dir) && !q.At.Before(gatedAt)
		}) {
			asked[q.Path] = true
		}
		if len(asked) >= len(c.w.Rel.Files) {
			c.fatalf("%s had asked %s for all %d files of sweep %d before it was stopped: nothing left to refuse",
				d, c.names[mid], len(asked), run)
		}
	}
	c.wait(fmt.Sprintf("the mirrors %v of sweep %d taken over from the stopped %s", takenOver, run, d), func() bool {
		rows, err := c.db.Query(context.Background(), `SELECT mirror_id, claims, coalesce(claimed_by, '') FROM sentry_work WHERE run_id = $1`, run)
		if err != nil {
			c.fatalf("%v", err)
		}
		taken := 0
		for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
			M, Claims int
			By        string
		}]))(c.t) {
			if c0, ok := held[r.M]; ok && r.Claims > c0 && r.By != "" && r.By != id {
				taken++
			}
		}
		return taken == len(held)
	})
	t.Logf("phase C: taken over after %s; resuming %s", time.Since(stoppedAt).Round(time.Millisecond), d)
	logFrom := len(p.logText())
	resumedAt := time.Now()
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	// Its first heartbeat once resumed tells it what it lost; then the
	// others may finish.
	c.wait(d+"'s heartbeat after SIGCONT", func() bool {
		var seen bool
		c.one(`SELECT last_seen > $2 FROM sentry_instances WHERE id = $1`, []any{id, resumedAt}, &seen)
		return seen
	})
	g.open()
	outcome, reason := c.waitEnded("the sweep taken over from the stopped daemon", run)
	endedAt := time.Now()
	if outcome != "completed" {
		c.errorf("sweep %d, taken over from the stopped %s: %s (%s), want completed", run, d, outcome, reason)
	}
	// Not one file request for the mirrors taken over from it.
	late := c.tr.requests(func(q request) bool {
		return q.Source == src && slices.Contains(takenOver, q.Mirror) && strings.Contains(q.Path, c.w.Rel.Dir) &&
			!q.At.Before(resumedAt) && !q.At.After(endedAt)
	})
	if len(late) > 0 {
		var b strings.Builder
		for _, q := range late {
			fmt.Fprintf(&b, "\t%s %s %s %s\n", q.At.Format("15:04:05.000"), q.Mirror, q.Method, q.Path)
		}
		c.errorf("%s, resumed at %s after its mirrors %v of sweep %d were taken over, sent %d file requests to them before the sweep ended at %s:\n%s",
			d, resumedAt.Format("15:04:05.000"), takenOver, run, len(late), endedAt.Format("15:04:05.000"), b.String())
	}
	rows, err := c.db.Query(context.Background(), `SELECT mirror_id, files_done, coalesce(done_by, '') FROM sentry_work
		WHERE run_id = $1 AND mirror_id = ANY ($2)`, run, slices.Collect(mapKeys(held)))
	if err != nil {
		c.fatalf("%v", err)
	}
	for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		M         int
		FilesDone bool
		DoneBy    string
	}]))(c.t) {
		if !r.FilesDone || r.DoneBy == "" || r.DoneBy == id {
			c.errorf("sweep %d, mirror %s: files done %v by %q; want done by another than the stopped %s (%s)",
				run, c.names[r.M], r.FilesDone, r.DoneBy, d, id)
		}
	}
	// It noticed it had lost them.
	logged := p.logText()[logFrom:]
	if hit := grepLines(logged, "lease not renewed in time", "work taken over by another instance", "another instance had taken over"); len(hit) == 0 {
		c.errorf("%s logged nothing, once resumed, of losing the mirrors %v it held:\n%s", d, takenOver, logged)
	} else {
		t.Logf("phase C: once resumed:\n\t%s", strings.Join(hit, "\n\t"))
	}
}

// grepLines returns the lines of text that contain any of words.
func grepLines(text string, words ...string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

func mapKeys(m map[int]int) func(yield func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// procState is the state letter of process pid (R, S, T for stopped...).
func procState(pid int) (byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	return b[i+2], nil
}

// Phase D: a daemon holding mirrors of a sweep is killed (SIGKILL); the
// sweep still ends with every file of every mirror checked.
func (c *chaos) killMidSweep() {
	c.t.Helper()
	t := c.t
	g := c.closeGate(func(_ string, r *http.Request) bool { return isFile(r) })
	run, k := c.sweepHeldAtGate(g)
	p, id := c.procs[k], c.ids[k]
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.ended[k] = true
	c.wait(k+" killed", func() bool {
		select {
		case <-p.exited:
			return true
		default:
			return false
		}
	})
	held := c.heldRows(run, id)
	t.Logf("phase D: %s killed holding mirrors %v of sweep %d", k, c.mirrorNames(held), run)
	if len(held) == 0 {
		c.fatalf("the killed %s held no mirror of sweep %d with files to do", k, run)
	}
	g.open()
	if outcome, reason := c.waitEnded("the sweep a daemon was killed in", run); outcome != "completed" {
		c.errorf("sweep %d, with %s killed: %s (%s), want completed", run, k, outcome, reason)
	}
	endedAt := time.Now()
	// No file lost: every mirror's row records its files all checked, by
	// a sentry that lived (those the killed one held, after taking them
	// over), and the mirrors saw that sentry ask for each of its files
	// during the sweep. (Not sentry_checks: routine checks may be only
	// counted there.)
	var startedAt time.Time
	c.one(`SELECT started_at FROM sentry_runs WHERE id = $1`, []any{run}, &startedAt)
	rs, err := c.db.Query(context.Background(), `SELECT mirror_id, claims, files_done, coalesce(done_by, ''),
			coalesce((result->'sums'->>'reachable')::bool, false), coalesce((result->'sums'->>'checked')::int, -1)
		FROM sentry_work WHERE run_id = $1 ORDER BY mirror_id`, run)
	if err != nil {
		c.fatalf("%v", err)
	}
	work := must(pgx.CollectRows(rs, pgx.RowToStructByPos[struct {
		M, Claims int
		FilesDone bool
		DoneBy    string
		Reachable bool
		Checked   int
	}]))(c.t)
	if len(work) != len(chaosMirrorNames) {
		c.errorf("sweep %d has %d work rows, want one per mirror (%d)", run, len(work), len(chaosMirrorNames))
	}
	var lost []string
	for _, r := range work {
		name, by := c.names[r.M], c.daemonID(r.DoneBy)
		if !r.FilesDone || by == "" || by == k || !r.Reachable || r.Checked != len(c.w.Rel.Files) {
			c.errorf("sweep %d, with %s killed: mirror %s's files done %v by %q (%s), reachable %v, %d files checked; want all %d checked by a sentry that lived",
				run, k, name, r.FilesDone, r.DoneBy, by, r.Reachable, r.Checked, len(c.w.Rel.Files))
			continue
		}
		if c0, ok := held[r.M]; ok && r.Claims <= c0 {
			c.errorf("sweep %d, mirror %s held by the killed %s with token %d: claims %d, yet done by %s; want taken over",
				run, name, k, c0, r.Claims, by)
		}
		asked := map[string]bool{}
		for _, q := range c.tr.requests(func(q request) bool {
			return q.Source == chaosSources[by] && q.Mirror == name && strings.Contains(q.Path, c.w.Rel.Dir) &&
				!q.At.Before(startedAt) && !q.At.After(endedAt)
		}) {
			asked[strings.TrimPrefix(q.Path, "/pub"+c.w.Rel.Dir)] = true
		}
		for _, f := range c.w.Rel.Paths() {
			if !asked[f] {
				lost = append(lost, fmt.Sprintf("%s %s (done by %s)", name, f, by))
			}
		}
	}
	if len(lost) > 0 {
		c.errorf("sweep %d, with %s killed holding %v: %d (mirror, file) pairs never asked for by the sentry whose row says it checked them: %v",
			run, k, c.mirrorNames(held), len(lost), lost)
	}
}

// stopDaemons stops the daemons still running with SIGTERM.
func (c *chaos) stopDaemons() {
	c.t.Helper()
	c.closeGate(func(string, *http.Request) bool { return false })
	for _, d := range chaosDaemons {
		if c.ended[d] {
			continue
		}
		c.ended[d] = true
		if err := c.procs[d].stop(c.t); err != nil {
			c.errorf("%s: exit after SIGTERM: %v", d, err)
		}
	}
	var running int
	c.one(`SELECT count(*) FROM sentry_runs WHERE outcome = 'running'`, nil, &running)
	if running != 0 {
		c.errorf("%d runs left running after every sentry stopped", running)
	}
}

// checkCaps: requests in flight per mirror never above the cap, and the
// cap reached (else the mirrors could not have seen it broken).
func (c *chaos) checkCaps() {
	c.t.Helper()
	c.tr.mu.Lock()
	defer c.tr.mu.Unlock()
	reached := false
	var maxima []string
	for _, m := range chaosMirrorNames {
		n := c.tr.max[m]
		maxima = append(maxima, fmt.Sprintf("%s %d", m, n))
		if n > chaosCap {
			c.t.Errorf("%s had %d requests in flight at once; per_mirror_concurrency is %d across every sentry and run", m, n, chaosCap)
		}
		reached = reached || n == chaosCap
	}
	if len(c.tr.over) > 0 {
		c.t.Errorf("requests in flight above the cap:\n%s", strings.Join(c.tr.over, "\n"))
	}
	if !reached {
		c.t.Errorf("no mirror ever had %d requests in flight (%s): the test cannot tell whether the cap held", chaosCap, strings.Join(maxima, ", "))
	}
	c.t.Logf("most requests in flight: %s (%d requests in all)", strings.Join(maxima, ", "), len(c.tr.log))
}

// checkFetchedOnce: every (mirror, file) was fetched (GET) exactly once
// over the whole test — by the one prime that the hooks and the CLI shared
// — and the prime recorded a GET of each.
func (c *chaos) checkFetchedOnce(prime int64) {
	c.t.Helper()
	gets := map[string][]string{}
	for _, q := range c.tr.requests(func(q request) bool { return q.Method == http.MethodGet && strings.Contains(q.Path, c.w.Rel.Dir) }) {
		k := q.Mirror + " " + strings.TrimPrefix(q.Path, "/pub"+c.w.Rel.Dir)
		gets[k] = append(gets[k], q.At.Format("15:04:05.000")+" from "+who(q.Source))
	}
	for _, m := range chaosMirrorNames {
		for _, f := range c.w.Rel.Paths() {
			if g := gets[m+" "+f]; len(g) != 1 {
				c.t.Errorf("%s %s fetched %d times (%v); want once", m, f, len(g), g)
			}
		}
	}
	var n, distinct int
	c.one(`SELECT count(*), count(DISTINCT (mirror_id, path)) FROM sentry_checks WHERE run_id = $1 AND method = 'GET'`,
		[]any{prime}, &n, &distinct)
	if want := len(chaosMirrorNames) * len(c.w.Rel.Files); n != want || distinct != want {
		c.t.Errorf("prime %d recorded %d GET checks of %d (mirror, file) pairs; want each of %d once", prime, n, distinct, want)
	}
}

// mark is a location's flags on a mirror.
type mark struct{ Active, Healthy bool }

// readMarks reads mirror_location_mirror_map by mirror name and location
// path.
func readMarks(t *testing.T, dbURL string) map[string]mark {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT m.name || ' ' || l.path, lmm.active, lmm.healthy
		FROM mirror_location_mirror_map lmm JOIN mirror_mirrors m ON m.id = lmm.mirror_id
		JOIN mirror_locations l ON l.id = lmm.location_id`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]mark{}
	for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		K               string
		Active, Healthy bool
	}]))(t) {
		out[r.K] = mark{Active: r.Active, Healthy: r.Healthy}
	}
	return out
}

// referenceMarks primes and sweeps mirrors like the test's, served the
// same content, with one sentry on a database of its own, and returns
// the marks.
func referenceMarks(t *testing.T) map[string]mark {
	t.Helper()
	ms := chaosMirrors(t)
	w := newWorld(t, "schedule:\n  sweep: \"0 0 1 1 *\"\n  deep_sweep: \"0 0 1 1 *\"\n", ms...)
	stockChaosMirrors(ms, w.Rel)
	f, err := os.OpenFile(w.Config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("state:\n  down_after: 1\n  up_after: 1\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	w.sentry(t, "prime", "--release", "1.5")
	w.sentry(t, "sweep")
	return readMarks(t, w.DBURL)
}

// checkMarks compares the marks with the reference's.
func (c *chaos) checkMarks(ref map[string]mark) {
	c.t.Helper()
	t := c.t
	loc := "/firefox/releases/1.5/win32/xpi/lang-:lang.xpi"
	// The reference itself: good copies offered, the others not.
	for _, m := range chaosMirrorNames {
		want := mark{Active: true, Healthy: true}
		if m == "missing" || m == "corrupt" {
			want = mark{}
		}
		if got, ok := ref[m+" "+loc]; !ok || got != want {
			t.Errorf("reference: %s %s is %+v (present %v), want %+v", m, loc, got, ok, want)
		}
	}
	got := readMarks(t, c.w.DBURL)
	keys := map[string]bool{}
	for k := range ref {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	for k := range keys {
		r, rok := ref[k]
		g, gok := got[k]
		if rok != gok || r != g {
			t.Errorf("marks of %s: %+v (present %v) after the chaos, %+v (present %v) after a single clean run", k, g, gok, r, rok)
		}
	}
}

// TestChaos runs three `sentry run` processes (vantage points us, eu and
// ap, source addresses 127.0.0.2-4), a `sentry prime` and a `sentry sweep`
// (vantage point cli, 127.0.0.5 and 127.0.0.6) on one PostgreSQL database
// and eight mirrors — six good copies, one missing a file, one serving a
// corrupt file — that are slow with every file and count the requests in
// flight. Scheduled sweeps run every two seconds throughout. Phases:
//
//	A. the release hook, signed once, sent to us and eu at once (one 202,
//	   one 409 with the same run id), `sentry prime` of the same release
//	   (it joins that run and prints its summary), then `sentry sweep`,
//	   with the prime's downloads held at the mirrors until the prime, the
//	   manual sweep and a scheduled sweep are all running;
//	B. the connection of a sweep's judge terminated (pg_terminate_backend)
//	   while it marks, held there by a trigger on sentry_mirror_state: the
//	   sweep still completes, and the next scheduled sweep runs;
//	C. a daemon SIGSTOPped while it holds mirrors of a sweep (all its
//	   file requests for them held at the mirrors), past its lease until
//	   the others have taken them over, then resumed (SIGCONT): it sends
//	   no file request to those mirrors before the sweep ends;
//	D. a daemon SIGKILLed while it holds mirrors of a sweep: the sweep
//	   completes with every file of every mirror checked;
//
// then, over the whole test: requests in flight per mirror never above
// checks.per_mirror_concurrency (everything together: the prime, the
// manual and the scheduled sweeps, every sentry), each (mirror, file)
// fetched (GET) exactly once, and the bouncer marks equal to those of a
// reference: the same mirrors primed and swept by one sentry on a
// database of its own.
func TestChaos(t *testing.T) {
	t.Parallel()
	began := time.Now()
	phase := func(name string) func() {
		start := time.Now()
		return func() { t.Logf("%s: %s", name, time.Since(start).Round(time.Millisecond)) }
	}
	c := newChaos(t)
	c.startDaemons()

	done := phase("A: hook ×2 + CLI prime + CLI sweep + scheduled sweeps")
	prime := c.primeFromEverywhere()
	done()

	done = phase("B: judge's connection terminated")
	c.killJudgeConnection()
	done()

	done = phase("C: SIGSTOP past the lease, SIGCONT")
	c.stopPastLease()
	done()

	done = phase("D: SIGKILL mid-sweep")
	c.killMidSweep()
	done()

	c.stopDaemons()
	c.checkCaps()
	c.checkFetchedOnce(prime)

	done = phase("reference run")
	ref := referenceMarks(t)
	done()
	c.checkMarks(ref)
	t.Logf("chaos test: %s", time.Since(began).Round(time.Millisecond))
}
