package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/internal/bench/loadfarm"
	"github.com/mirrorsentry/sentry/sentry/demo/pgcluster"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// The shared sweep: several `sentry run` daemons on one database split a
// scheduled sweep's work rows (sentry_work) between them. Each daemon
// holds at most ⌈concurrency / per-mirror⌉ mirrors at once, so on a
// latency-bound farm the sweep's rate is capped per instance, and adding
// instances should add rate almost linearly.

// sharedVantage is the one vantage point every daemon of the figure has:
// the figure measures how one vantage point's sweep scales with the
// processes sharing it. Distinct vantage points would each also check
// every mirror's reachability (and judge by quorum), so the rows for 1, 2
// and 3 instances would not be the same work.
const sharedVantage = "bench"

// sharedSchedule is the daemons' sweep schedule; the first sweep after
// they start is the one measured.
const sharedSchedule = "@every 2s"

// sharedEnv is what every measurement of the figure shares.
type sharedEnv struct {
	o       Options
	cluster *pgcluster.Cluster
	farm    *loadfarm.Remote
	rel     loadfarm.ReleaseSpec
	dir     string
	logf    func(format string, args ...any)
}

// sharedResult is one measurement: the first scheduled sweep run by n
// daemons.
type sharedResult struct {
	n                  int
	runID              int64
	outcome, reason    string
	checks, fileChecks int
	wall               time.Duration // the run's finished_at − started_at
	rate               float64       // checks / wall
	rowsBy             []int         // work rows done by each instance, most first
	rows, takeovers    int           // work rows; rows claimed more than once
	late               int           // daemons registered after the run began
	maxInFlight        int64         // on one mirror, seen by the farm
	requests           int64         // seen by the farm
	cpu                time.Duration // of the n daemons, over their whole life
	afterLast          time.Duration // from its last check's answer to the run's end
	err                error         // the measurement is not valid
}

// sharedSpec is the figure's release: files files per mirror.
func sharedSpec(files int) loadfarm.ReleaseSpec {
	if files%langsPer == 0 {
		return spec("shared", files, 4<<10)
	}
	return loadfarm.ReleaseSpec{Name: "shared", Dir: "/pub/shared/", Locations: 1, Langs: files, Size: 4 << 10}
}

// sharedSlots is how many mirrors one daemon holds at once.
func sharedSlots(p Params) int {
	return (p.SharedConcurrency + p.SharedPerMirror - 1) / p.SharedPerMirror
}

// sharedBound is the time n instances need at least when every request
// waits the farm's latency: the bound, mirrors × files × latency /
// (n × slots × per-mirror), and a tighter one that counts whole rounds of
// mirrors and each mirror's reachability HEAD.
func sharedBound(p Params, n int) (simple, rounds time.Duration) {
	slots := sharedSlots(p)
	simple = time.Duration(float64(p.SharedMirrors*p.SharedFiles) * float64(p.SharedLatency) / float64(n*slots*p.SharedPerMirror))
	perMirror := time.Duration(math.Ceil(float64(p.SharedFiles)/float64(p.SharedPerMirror))+1) * p.SharedLatency
	rounds = time.Duration(math.Ceil(float64(p.SharedMirrors)/float64(n*slots))) * perMirror
	return simple, rounds
}

// sharedSweep measures the figure: for 1..p.SharedInstances daemons, the
// first scheduled sweep on a fresh database, and adds its rows to the
// report. An error means the harness itself failed; a sweep that went
// wrong is reported as NOT VALID with its evidence in the log.
func sharedSweep(ctx context.Context, o Options, cluster *pgcluster.Cluster, dir string, rep *report, logf func(string, ...any)) error {
	p := o.Params
	if p.SharedInstances < 1 || p.SharedMirrors < 1 || p.SharedFiles < 1 || p.SharedConcurrency < 1 || p.SharedPerMirror < 1 {
		return fmt.Errorf("shared sweep: instances, mirrors, files, concurrency and per-mirror concurrency must be at least 1")
	}
	rel := sharedSpec(p.SharedFiles)
	logf("shared sweep: starting a load farm of %d mirrors × %d files, %s per request", p.SharedMirrors, p.SharedFiles, p.SharedLatency)
	farm, err := loadfarm.Spawn(ctx, o.Self, []string{"farm"}, loadfarm.Options{
		Mirrors: p.SharedMirrors, Releases: []loadfarm.ReleaseSpec{rel}, Latency: p.SharedLatency, Seed: 3})
	if err != nil {
		return err
	}
	defer farm.Close()
	env := &sharedEnv{o: o, cluster: cluster, farm: farm, rel: rel, dir: dir, logf: logf}

	var results []sharedResult
	for n := 1; n <= p.SharedInstances; n++ {
		logf("shared sweep: %d × `sentry run`", n)
		r, err := env.measure(ctx, n)
		if err != nil {
			return err
		}
		if r.runID == 0 {
			logf("  no sweep measured: %v", r.err)
			results = append(results, r)
			continue
		}
		simple, rounds := sharedBound(p, n)
		logf("  run %d %s in %s: %d checks, %.0f checks/s (bound %s, by rounds %s; end %s after the last row done); rows per instance %v, farm max in flight per mirror %d, daemons' CPU %s%s",
			r.runID, r.outcome, r.wall.Round(time.Millisecond), r.checks, r.rate, simple.Round(time.Millisecond), rounds.Round(time.Millisecond),
			r.afterLast.Round(time.Millisecond),
			r.rowsBy, r.maxInFlight, r.cpu.Round(time.Millisecond), errNote(r.err, 0))
		results = append(results, r)
	}

	slots := sharedSlots(p)
	one := results[0]
	for _, r := range results {
		simple, rounds := sharedBound(p, r.n)
		boundRate := float64(p.SharedMirrors*p.SharedFiles) / simple.Seconds()
		perInst := "instance"
		if r.n > 1 {
			perInst = "instances"
		}
		f := figure{name: fmt.Sprintf("shared sweep, %d %s", r.n, perInst), value: fmt.Sprintf("%.0f checks/s", r.rate)}
		note := fmt.Sprintf("run %d: %d checks (%d files + %d reachability HEADs) in %s (finished_at − started_at; the run ended %s after its last row was done), outcome %s; the release primed and swept before (seeded), so that each file is one conditional HEAD; work rows done per instance %s; %d rows taken over; at most %d requests in flight on one mirror (cap %d); %d requests at the farm; the daemons' CPU %s in all; latency bound %s (%.0f checks/s), %s counting whole rounds of mirrors and each one's reachability HEAD (rate %.2f of that)",
			r.runID, r.checks, r.fileChecks, r.checks-r.fileChecks, r.wall.Round(time.Millisecond),
			r.afterLast.Round(time.Millisecond), r.outcome,
			intsList(r.rowsBy), r.takeovers, r.maxInFlight, p.SharedPerMirror, r.requests, r.cpu.Round(time.Millisecond),
			simple.Round(time.Millisecond), boundRate, rounds.Round(time.Millisecond),
			r.rate*rounds.Seconds()/float64(max(r.fileChecks, 1)))
		if r.runID == 0 {
			f.value = "no sweep"
			note = "no sweep was measured"
		}
		if r.n == 1 {
			f.limit = fmt.Sprintf("%.0f checks/s (latency bound)", boundRate)
			f.ratio = r.rate / boundRate
			f.target = "reference for 2 and 3 (no target)"
			f.pass = r.err == nil
			note = fmt.Sprintf("%d mirrors × %d files (HEAD), %s latency per request at the farm; every daemon `checks.concurrency: %d`, `per_mirror_concurrency: %d` (so %d mirrors at once), `vantage: %s` for all (one vantage point, so every row is the same work whatever the number of instances; distinct ones would add a reachability HEAD per mirror per vantage point and a quorum), `schedule.sweep: %q`, `cluster.poll: 200ms`, `cluster.lease: 10s`; a fresh database for each count of instances, the first scheduled sweep measured from its sentry_runs row; the ratio of this row is to the latency bound mirrors × files × latency / (instances × %d mirrors × %d requests), the ratio of the others to this row. ",
				p.SharedMirrors, p.SharedFiles, p.SharedLatency, p.SharedConcurrency, p.SharedPerMirror, slots, sharedVantage, sharedSchedule, slots, p.SharedPerMirror) + note
		} else {
			target := 0.8 * float64(r.n) // near-linear beyond 3
			switch r.n {
			case 2:
				target = 1.7
			case 3:
				target = 2.4
			}
			f.limit = fmt.Sprintf("%.0f checks/s (1 instance)", one.rate)
			f.ratio = r.rate / one.rate
			if one.rate == 0 {
				f.limit = "—"
			}
			f.target = fmt.Sprintf("≥ %.1f (near-linear)", target)
			f.pass = r.err == nil && one.err == nil && f.ratio >= target
		}
		f.note = note + errNote(r.err, 0)
		rep.add(f)
	}
	return nil
}

func intsList(v []int) string {
	if len(v) == 0 {
		return "none"
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, "/")
}

// measure runs n daemons on a fresh database until their first scheduled
// sweep has ended, stops them and reads what the run did.
func (e *sharedEnv) measure(ctx context.Context, n int) (res sharedResult, err error) {
	p := e.o.Params
	res.n = n
	dbURL, err := e.cluster.CreateDB(ctx, fmt.Sprintf("shared%d", n))
	if err != nil {
		return res, err
	}
	st, err := store.Open(ctx, dbURL, 2)
	if err != nil {
		return res, err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return res, err
	}
	mirrorIDs, err := seed(ctx, st, "s", e.farm.Info, []loadfarm.ReleaseSpec{e.rel})
	if err != nil {
		return res, err
	}
	if _, err := saveRelease(ctx, st, e.farm.Info, e.rel); err != nil {
		return res, err
	}
	if err := activate(ctx, st, mirrorIDs, e.rel.Name); err != nil {
		return res, err
	}
	// The steady state (the release primed and swept before): a sweep
	// of files sentry never verified would hash each one (HEAD, then
	// GET) before offering it, two requests a file.
	if err := seedSteady(ctx, st, e.rel.Name, sharedVantage, true); err != nil {
		return res, err
	}
	if err := settle(ctx, st); err != nil {
		return res, err
	}
	cfg, err := writeConfig(e.dir, fmt.Sprintf("shared-%d", n), dbURL, e.farm.Master, p.SharedConcurrency, p.SharedPerMirror,
		fmt.Sprintf(`vantage: %s
http:
  listen: 127.0.0.1:0
schedule:
  sweep: %q
  deep_sweep: "0 0 1 1 *"
cluster:
  lease: 10s
  poll: 200ms
shutdown_grace: 5s
`, sharedVantage, sharedSchedule))
	if err != nil {
		return res, err
	}
	if err := e.farm.Reset(); err != nil {
		return res, err
	}

	var ds []*daemon
	defer func() {
		// Every path out stops the daemons: SIGTERM, then SIGKILL.
		for _, d := range ds {
			d.stop(30 * time.Second)
		}
	}()
	for i := range n {
		name := fmt.Sprintf("shared-sweep-%d-%d", n, i+1)
		d, err := startDaemon(e.o, e.dir, name, cfg)
		if err != nil {
			return res, err
		}
		ds = append(ds, d)
	}
	evidence := func(why string) {
		if ctx.Err() != nil {
			return // interrupted: no evidence of anything
		}
		e.logf("  NOT VALID: %s; evidence follows", why)
		e.dumpEvidence(ctx, st, ds)
	}

	// Every daemon registered as a live instance (bounded).
	if err := waitFor(ctx, 30*time.Second, ds, func() (bool, error) {
		var live int
		err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM sentry_instances WHERE role = 'daemon' AND stopped_at IS NULL`).Scan(&live)
		return live >= n, err
	}); err != nil {
		res.err = fmt.Errorf("the daemons did not all start: %w", err)
		evidence(res.err.Error())
		return res, ctxErr(ctx)
	}

	// The first scheduled sweep, until it ends (bounded: the slot is at
	// most 2 s away, the sweep itself many times its bound).
	_, rounds := sharedBound(p, n)
	deadline := 30*time.Second + 10*rounds
	var started, finished time.Time
	if err := waitFor(ctx, deadline, ds, func() (bool, error) {
		err := st.Pool().QueryRow(ctx, `SELECT id, outcome, reason, started_at, coalesce(finished_at, now()) FROM sentry_runs
			WHERE kind = 'sweep' ORDER BY id LIMIT 1`).Scan(&res.runID, &res.outcome, &res.reason, &started, &finished)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil && res.outcome != store.OutcomeRunning, err
	}); err != nil {
		res.err = fmt.Errorf("the first sweep did not end within %s (run %d, outcome %q): %w", deadline.Round(time.Second), res.runID, res.outcome, err)
		evidence(res.err.Error())
		return res, ctxErr(ctx)
	}
	res.wall = finished.Sub(started)
	if fs, err := e.farm.Stats(); err == nil {
		res.maxInFlight, res.requests = fs.MaxInFlight, fs.Requests
	}

	// Stop the daemons now (their next sweep may have begun; it is not
	// measured) and read what the first one did.
	var exits []string
	for _, d := range ds {
		d.stop(30 * time.Second)
		res.cpu += d.cpu
		if d.exitErr != nil {
			exits = append(exits, fmt.Sprintf("%s: %v", d.name, d.exitErr))
		}
	}
	q := st.Pool()
	// In the steady state checks that find what was known write no row:
	// the files checked are the work rows' sums, and the reachability
	// checks are counted the same way (one per row per vantage point).
	var last *time.Time
	var rowsDone int
	if err := q.QueryRow(ctx, `SELECT coalesce(sum((result->'sums'->>'checked')::int), 0)::int, count(*) FILTER (WHERE done)::int, max(done_at)
		FROM sentry_work WHERE run_id = $1`, res.runID).Scan(&res.fileChecks, &rowsDone, &last); err != nil {
		return res, err
	}
	res.checks = res.fileChecks + rowsDone
	if last != nil {
		res.afterLast = finished.Sub(*last)
	}
	res.rate = float64(res.fileChecks) / res.wall.Seconds()
	rows, err := q.Query(ctx, `SELECT count(*) FROM sentry_work WHERE run_id = $1 AND done_by IS NOT NULL GROUP BY done_by ORDER BY 1 DESC`, res.runID)
	if err != nil {
		return res, err
	}
	for rows.Next() {
		var c int
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return res, err
		}
		res.rowsBy = append(res.rowsBy, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, err
	}
	if err := q.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE claims > 1) FROM sentry_work WHERE run_id = $1`,
		res.runID).Scan(&res.rows, &res.takeovers); err != nil {
		return res, err
	}
	if err := q.QueryRow(ctx, `SELECT count(*) FROM sentry_instances WHERE role = 'daemon' AND started_at > $1`,
		started).Scan(&res.late); err != nil {
		return res, err
	}

	var problems []string
	if res.outcome != store.OutcomeCompleted {
		problems = append(problems, fmt.Sprintf("outcome %s (%s)", res.outcome, res.reason))
	}
	if want := p.SharedMirrors * p.SharedFiles; res.fileChecks != want {
		problems = append(problems, fmt.Sprintf("%d file checks, want %d", res.fileChecks, want))
	}
	if res.rows != p.SharedMirrors || len(res.rowsBy) == 0 || sum(res.rowsBy) != p.SharedMirrors {
		problems = append(problems, fmt.Sprintf("%d work rows, %d done, want %d", res.rows, sum(res.rowsBy), p.SharedMirrors))
	}
	if len(res.rowsBy) != n {
		problems = append(problems, fmt.Sprintf("rows done by %d distinct instances, want %d", len(res.rowsBy), n))
	}
	if res.late > 0 {
		problems = append(problems, fmt.Sprintf("%d daemons registered after the sweep began", res.late))
	}
	if res.maxInFlight > int64(p.SharedPerMirror) {
		problems = append(problems, fmt.Sprintf("%d requests in flight on one mirror, over the cap of %d", res.maxInFlight, p.SharedPerMirror))
	}
	if len(exits) > 0 {
		problems = append(problems, "exit after SIGTERM: "+strings.Join(exits, "; "))
	}
	if len(problems) > 0 {
		res.err = errors.New(strings.Join(problems, "; "))
		evidence(res.err.Error())
	}
	return res, nil
}

func sum(v []int) int {
	s := 0
	for _, x := range v {
		s += x
	}
	return s
}

// ctxErr is the harness's own error when it was interrupted, else nil (a
// measurement that went wrong is reported, not fatal).
func ctxErr(ctx context.Context) error { return ctx.Err() }

// waitFor polls done every 25 ms until it says true, the timeout passes,
// a daemon exits or ctx ends.
func waitFor(ctx context.Context, timeout time.Duration, ds []*daemon, done func() (bool, error)) error {
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	end := time.After(timeout)
	var last error
	for {
		ok, err := done()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		for _, d := range ds {
			select {
			case <-d.exited:
				return fmt.Errorf("%s exited early: %v", d.name, d.exitErr)
			default:
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end:
			if last != nil {
				return fmt.Errorf("timed out after %s (last error: %w)", timeout, last)
			}
			return fmt.Errorf("timed out after %s", timeout)
		case <-t.C:
		}
	}
}

// dumpEvidence writes what an invalid measurement leaves: the runs, the
// work rows and instances, and the tail of every daemon's log.
func (e *sharedEnv) dumpEvidence(ctx context.Context, st *store.Store, ds []*daemon) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	dump := func(title, sql string) {
		e.logf("  -- %s", title)
		rows, err := st.Pool().Query(ctx, sql)
		if err != nil {
			e.logf("     (%v)", err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				e.logf("     (%v)", err)
				return
			}
			e.logf("     %v", v)
		}
	}
	dump("sentry_runs (id, kind, slot, outcome, reason, started_at, finished_at, instance, judge_by, judge_until)",
		`SELECT id, kind, slot, outcome, reason, started_at, finished_at, instance, judge_by, judge_until FROM sentry_runs ORDER BY id`)
	dump("sentry_work (run_id, mirror_id, seq, vantages, needs, not_from, files_done, done, claimed_by, lease_until, claims, done_by)",
		`SELECT run_id, mirror_id, seq, vantages, needs, not_from, files_done, done, claimed_by, lease_until, claims, done_by
		 FROM sentry_work ORDER BY run_id, seq`)
	dump("sentry_instances (id, vantage, role, started_at, last_seen, stopped_at)",
		`SELECT id, vantage, role, started_at, last_seen, stopped_at FROM sentry_instances ORDER BY started_at`)
	dump("checks per run (run_id, checks, file checks)",
		`SELECT run_id, count(*), count(*) FILTER (WHERE path <> '') FROM sentry_checks GROUP BY run_id ORDER BY run_id`)
	for _, d := range ds {
		e.logf("  -- log of %s (%s), last 40 lines", d.name, d.logPath)
		for _, l := range tailLines(d.logPath, 40) {
			e.logf("     %s", l)
		}
	}
}

func tailLines(path string, n int) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}

// daemon is a running `sentry run`, its stderr in a file.
type daemon struct {
	name, logPath string
	cmd           *exec.Cmd
	logFile       *os.File
	exited        chan struct{} // closed when the process has ended
	exitErr       error         // its Wait error, once exited
	cpu           time.Duration
	once          sync.Once
}

// startDaemon starts `sentry run --config cfg` (with o.Profile, this
// program as a CPU-profiled sentry). The process gets SIGKILL if this one
// dies first.
func startDaemon(o Options, dir, name, cfg string) (*daemon, error) {
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"run", "--config", cfg}
	bin := o.Sentry
	if o.Profile != "" {
		args = append([]string{"sentry-profiled", filepath.Join(o.Profile, name+".pprof")}, args...)
		bin = o.Self
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = io.Discard
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	d := &daemon{name: name, logPath: logPath, cmd: cmd, logFile: lf, exited: make(chan struct{})}
	go func() {
		d.exitErr = cmd.Wait()
		if ps := cmd.ProcessState; ps != nil {
			if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
				d.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
		}
		lf.Close()
		close(d.exited)
	}()
	return d, nil
}

// stop sends SIGTERM and waits for the daemon to exit, killing it after
// grace. It is idempotent.
func (d *daemon) stop(grace time.Duration) {
	d.once.Do(func() {
		select {
		case <-d.exited:
			return
		default:
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-d.exited:
		case <-t.C:
			_ = d.cmd.Process.Kill()
			<-d.exited
			d.exitErr = fmt.Errorf("did not exit within %s of SIGTERM; killed", grace)
		}
	})
}
