package prime_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestPrimeMasterDownMarksNothingDown(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	_, good := w.Static(t, "good")
	missing, mid := w.Static(t, "missing")
	missing.Remove(w.Rel, "win32/de/Firefox Setup 1.5.exe")
	dead, err := localmirror.DeadURL()
	if err != nil {
		t.Fatal(err)
	}
	did := w.AddMirror(t, "dead", dead, nil)
	// The master is gone from the moment mirrors are checked.
	var masterDown atomic.Bool
	w.Master.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if !masterDown.Load() {
			return false
		}
		http.Error(w, "gone", http.StatusServiceUnavailable)
		return true
	})
	missing.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		masterDown.Store(true)
		return false
	})
	rep := w.Prime(t)
	if rep.Outcome != store.OutcomeGuarded || !strings.Contains(rep.Reason, "master") {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	marks := w.Marks(t)
	for loc, byMirror := range marks {
		for m, row := range byMirror {
			if !row.Active || !row.Healthy {
				t.Errorf("location %d mirror %d marked down (%+v) while the master was unreachable", loc, m, row)
			}
		}
	}
	if marks[w.LocWin][good] != world.Good {
		t.Errorf("the good mirror was not marked good")
	}
	_, _ = mid, did
	var outcome, reason string
	if err := w.Pool().QueryRow(context.Background(), `SELECT outcome, reason FROM sentry_runs WHERE id = $1`, rep.RunID).Scan(&outcome, &reason); err != nil {
		t.Fatal(err)
	}
	if outcome != "guarded" || !strings.Contains(reason, "master") {
		t.Errorf("run record: %s %q", outcome, reason)
	}
}

func TestPrimeManifestErrorsWriteNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		manifest []byte
		want     string
	}{
		{"malformed line", []byte("0123  a.exe\n"), "SHA256SUMS:1:"},
		{"escaping path", []byte(strings.Repeat("ab", 32) + "  ../etc/passwd\n"), ".."},
		{"missing", nil, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := world.New(t, nil)
			d := w.Deps
			w.Static(t, "good")
			if tt.manifest == nil {
				w.Master.Remove(w.Rel, "SHA256SUMS")
			} else {
				w.Master.Put(w.Rel, "SHA256SUMS", tt.manifest)
			}
			_, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
			if !errors.Is(err, release.ErrManifest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want ErrManifest naming %q", err, tt.want)
			}
			var n int
			if err := w.Pool().QueryRow(context.Background(), `SELECT (SELECT count(*) FROM sentry_releases) +
				(SELECT count(*) FROM sentry_work) + (SELECT count(*) FROM sentry_checks) +
				(SELECT count(*) FROM mirror_location_mirror_map) + (SELECT count(*) FROM sentry_log)`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%d rows written for a run that could not be done", n)
			}
			// The run itself is recorded as failed, with the reason.
			var outcome, reason string
			if err := w.Pool().QueryRow(context.Background(), `SELECT outcome, reason FROM sentry_runs`).Scan(&outcome, &reason); err != nil {
				t.Fatal(err)
			}
			if outcome != store.OutcomeFailed || !strings.Contains(reason, tt.want) {
				t.Errorf("run recorded %s %q; want failed naming %q", outcome, reason, tt.want)
			}
		})
	}
}

// The world's files in the order a prime reads them from the master and
// primes them on a mirror: by path.
const (
	firstFile = "linux-x86_64/de/firefox-1.5.tar.bz2"
	lastFile  = "win32/en-US/Firefox Setup 1.5.exe"
)

// events records what happened, in order, from any goroutine.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

// holdMasterFile makes the master answer a GET of path (its body, after
// its headers were asked for by HEAD as they may be) only once open is
// closed, recording when it does; a test that never opens it fails rather
// than hangs: after a minute the master answers anyway.
func holdMasterFile(w *world.World, path string, open <-chan struct{}, ev *events) {
	w.Master.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+path) {
			select {
			case <-open:
			case <-time.After(time.Minute):
			}
			ev.add("master: " + path)
		}
		return false
	})
}

// TestPrimeStartsBeforeTheMasterIsRead: priming a file on the mirrors
// waits for the master's copy of that file only (its block digests, for
// a sampled check), never for the whole release: the first mirror's
// first file is primed and verified while the master has not yet sent
// the release's last file, which it sends only after that.
func TestPrimeStartsBeforeTheMasterIsRead(t *testing.T) {
	t.Parallel()
	for _, sampled := range []bool{false, true} {
		t.Run(map[bool]string{false: "full", true: "sampled"}[sampled], func(t *testing.T) {
			t.Parallel()
			// The master holds a file back while the mirror is primed:
			// a loaded machine must not time the wait out.
			w := world.New(t, &world.Options{Sampled: sampled, Config: func(c *config.Config) {
				c.Checks.HeaderTimeout = config.Duration(time.Minute)
			}})
			var s *localmirror.Server
			var id int
			if sampled {
				s, id = cache(t, w, "m")
			} else {
				s, id = w.Static(t, "m")
			}
			ev := &events{}
			open := make(chan struct{})
			var once sync.Once
			t.Cleanup(func() { once.Do(func() { close(open) }) })
			holdMasterFile(w, lastFile, open, ev)
			s.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
				// The first file's verification: its GET (full), or its
				// sample of blocks after the one-byte prime (sampled),
				// which needs the digests of the master's copy.
				rng := r.Header.Get("Range")
				if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+firstFile) && (!sampled || (rng != "" && rng != "bytes=0-0")) {
					once.Do(func() {
						ev.add("mirror: " + firstFile)
						close(open)
					})
				}
				return false
			})
			rep := w.Prime(t)
			if rep.Outcome != store.OutcomeCompleted {
				t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
			}
			if got, want := ev.all(), []string{"mirror: " + firstFile, "master: " + lastFile}; !slices.Equal(got, want) {
				t.Errorf("events %q, want %q: the first file was not primed before the master's last was read", got, want)
			}
			sums := world.MirrorSums(t, rep, "m")
			if sums.State != "ok" || (sampled && sums.FilesSampled != 4) {
				t.Errorf("mirror: %+v", sums)
			}
			if w.Marks(t)[w.LocWin][id] != world.Good || w.Marks(t)[w.LocLin][id] != world.Good {
				t.Errorf("marks: %+v", w.Marks(t))
			}
			var state string
			w.QueryRow(t, `SELECT master_state FROM sentry_releases WHERE name = '1.5'`, nil, &state)
			if state != store.MasterOK {
				t.Errorf("master_state %q, want ok", state)
			}
		})
	}
}

// TestPrimeRefusesAWrongMasterCopy: the master is the one copy known good;
// when it serves a file otherwise than its manifest says, the release is
// unusable: the prime fails naming the file, and nothing is marked —
// though the mirrors were primed meanwhile, and a mirror done with every
// file waited for the master's copy to be read to the end. The release
// is recorded with its master copy failed, and sweeps leave it alone.
func TestPrimeRefusesAWrongMasterCopy(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{config.VerifyFull, config.VerifySampled} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			w := world.New(t, &world.Options{Sampled: mode == config.VerifySampled, Config: func(c *config.Config) {
				c.Checks.HeaderTimeout = config.Duration(time.Minute)
			}})
			d := w.Deps
			var s *localmirror.Server
			if mode == config.VerifySampled {
				s, _ = cache(t, w, "m")
			} else {
				s, _ = w.Static(t, "m")
			}
			w.Master.Put(w.Rel, lastFile, localmirror.Flip(w.Rel.Files[lastFile]))
			// The master's wrong file is read once the mirror was primed
			// with what it could be primed with: in full mode every file
			// (and waits to be marked), in sampled mode the files before
			// it (the last waits for its digests).
			ev := &events{}
			open := make(chan struct{})
			var once sync.Once
			letGo := func() { once.Do(func() { close(open) }) }
			t.Cleanup(letGo)
			holdMasterFile(w, lastFile, open, ev)
			go func() {
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					var ready bool
					if mode == config.VerifyFull {
						ready = strings.Contains(w.Logs.String(), "marking it once the master's copy is read to the end")
					} else {
						ready = s.Stats().Requests >= 3*2 // three files: a one-byte prime and a sample each
					}
					if ready {
						break
					}
					time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
				}
				letGo()
			}()
			_, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
			if !errors.Is(err, release.ErrMasterCopy) || !strings.Contains(err.Error(), lastFile) || !strings.Contains(err.Error(), "checksum_mismatch") {
				t.Fatalf("prime: %v; want the master's copy of %s refused", err, lastFile)
			}
			if n := s.Stats().Requests; n == 0 {
				t.Errorf("the mirror was not primed while the master's copy was read")
			}
			var marks, logs int
			var state, detail, outcome, reason string
			w.QueryRow(t, `SELECT (SELECT count(*) FROM mirror_location_mirror_map), (SELECT count(*) FROM sentry_log),
				master_state, master_detail FROM sentry_releases WHERE name = '1.5'`, nil, &marks, &logs, &state, &detail)
			if marks != 0 || logs != 0 {
				t.Errorf("%d marks and %d sentry_log rows written for a release whose master copy is wrong", marks, logs)
			}
			if state != store.MasterFailed || !strings.Contains(detail, lastFile) {
				t.Errorf("master_state %q %q, want failed naming %s", state, detail, lastFile)
			}
			w.QueryRow(t, `SELECT outcome, reason FROM sentry_runs`, nil, &outcome, &reason)
			if outcome != store.OutcomeFailed || !strings.Contains(reason, lastFile) {
				t.Errorf("run recorded %s %q", outcome, reason)
			}
			rels, err := w.Store.KnownReleases(context.Background())
			if err != nil || len(rels) != 0 {
				t.Errorf("sweeps know %d releases (%v), want none", len(rels), err)
			}
		})
	}
}

// TestPrimeAcrossInstancesWhileTheMasterIsRead: a sentry working on a
// prime another planned follows that one's read of the master's copy
// through the database: it samples each file once its digests are
// stored, before the copy is read to the end, and marks once the copy is
// recorded good; a copy found wrong leaves its mirror unmarked too.
func TestPrimeAcrossInstancesWhileTheMasterIsRead(t *testing.T) {
	t.Parallel()
	for _, wrong := range []bool{false, true} {
		t.Run(map[bool]string{false: "good copy", true: "wrong copy"}[wrong], func(t *testing.T) {
			t.Parallel()
			w := world.New(t, &world.Options{Sampled: true, Config: func(c *config.Config) {
				oneAtATime(c)
				c.Checks.HeaderTimeout = config.Duration(time.Minute)
			}})
			_, firstID := cache(t, w, "first")
			second, secondID := cache(t, w, "second")
			w.Exec(t, `UPDATE mirror_mirrors SET rating = CASE WHEN id = $1 THEN 20 ELSE 10 END`, firstID)
			if wrong {
				w.Master.Put(w.Rel, lastFile, localmirror.Flip(w.Rel.Files[lastFile]))
			}
			ev := &events{}
			open := make(chan struct{})
			var once sync.Once
			t.Cleanup(func() { once.Do(func() { close(open) }) })
			holdMasterFile(w, lastFile, open, ev)
			// The master's last file goes once the second sentry, which
			// works the second mirror, sampled its first file.
			second.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
				if rng := r.Header.Get("Range"); strings.HasSuffix(r.URL.Path, "/"+firstFile) && rng != "" && rng != "bytes=0-0" {
					once.Do(func() {
						ev.add("second: " + firstFile)
						close(open)
					})
				}
				return false
			})

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

			rep, err := sentry.Prime(context.Background(), w.Deps, sentry.PrimeOptions{Release: "1.5"})
			if got, want := ev.all(), []string{"second: " + firstFile, "master: " + lastFile}; !slices.Equal(got, want) {
				t.Errorf("events %q, want %q", got, want)
			}
			var doneBy []string
			rows, qerr := w.Pool().Query(context.Background(), `SELECT done_by FROM sentry_work WHERE mirror_id = $1`, secondID)
			if qerr != nil {
				t.Fatal(qerr)
			}
			for rows.Next() {
				var by string
				if err := rows.Scan(&by); err != nil {
					t.Fatal(err)
				}
				doneBy = append(doneBy, by)
			}
			rows.Close()
			if len(doneBy) != 1 || doneBy[0] != wk.ID() {
				t.Errorf("the second mirror was done by %v, want the second sentry %s", doneBy, wk.ID())
			}
			marks := w.Marks(t)
			if wrong {
				if !errors.Is(err, release.ErrMasterCopy) {
					t.Fatalf("prime: %v, want the master's copy refused", err)
				}
				if len(marks) != 0 {
					t.Errorf("marks written: %+v", marks)
				}
				return
			}
			if err != nil || rep.Outcome != store.OutcomeCompleted {
				t.Fatalf("prime: %v %+v", err, rep)
			}
			for _, id := range []int{firstID, secondID} {
				if marks[w.LocWin][id] != world.Good || marks[w.LocLin][id] != world.Good {
					t.Errorf("mirror %d: %+v", id, marks)
				}
			}
			if n := world.MirrorSums(t, rep, "second").FilesSampled; n != 4 {
				t.Errorf("the second sentry sampled %d files, want 4", n)
			}
		})
	}
}
