package prime_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
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

// TestPrimeRefusesAWrongMasterCopy: the master is the one copy known good;
// when it serves a file otherwise than its manifest says, the release is
// unusable: the prime fails before any mirror is contacted, naming the
// file, and records nothing of the release.
func TestPrimeRefusesAWrongMasterCopy(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{config.VerifyFull, config.VerifySampled} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			w := world.New(t, nil)
			d := w.Deps
			d.Config.Verify.Mode = mode
			s, _ := w.Static(t, "m")
			w.Master.Put(w.Rel, bad, localmirror.Flip(w.Rel.Files[bad]))
			_, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
			if !errors.Is(err, release.ErrMasterCopy) || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "checksum_mismatch") {
				t.Fatalf("prime: %v; want the master's copy of %s refused", err, bad)
			}
			if n := s.Stats().Requests; n != 0 {
				t.Errorf("the mirror was asked %d times", n)
			}
			var rels int
			if err := w.Pool().QueryRow(context.Background(), `SELECT count(*) FROM sentry_releases`).Scan(&rels); err != nil {
				t.Fatal(err)
			}
			if rels != 0 {
				t.Errorf("%d releases recorded", rels)
			}
		})
	}
}
