// Package report computes what ops read about mirrors, releases and runs
// from what sentry recorded (package store writes it). Every figure is
// computed in PostgreSQL (the checks table holds millions of rows; none of
// them is loaded here), and every list is bounded. A Reporter answers, one file each:
//
//   - mirrors.go: the per-mirror report (Mirrors: checks and failures in a
//     window, the state the sweeps left, the condition every view gives a
//     mirror) and the bare states /metrics reads (States); vantage.go says
//     where a mirror fails from; admincols.go reads what its admin is told,
//     which tls.go (its certificate), families.go (the address families it
//     is broken over) and maintenance.go (its window) put in words;
//   - mirror.go: the report on one mirror (Mirror: failing files, state
//     changes, counts by vantage point, recent failures);
//   - release.go: a release's uptake (Release), and the releases known
//     (Releases);
//   - history.go: the daily strips of the status page (History);
//   - runs.go: the primes and sweeps recorded (Runs), their totals by
//     kind and outcome (RunTotals), and the uptake of the releases primed
//     lately, for alerts (RecentUptake).
//
// The same values feed `sentry report` (table, JSON, CSV: format.go), the
// status page and its /api/ (package web).
package report

import (
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned (wrapped) when the mirror or release asked about
// does not exist.
var ErrNotFound = errors.New("not found")

// Limits on the lists a report returns: a mirror failing every file of
// every release must not produce an unbounded page.
const (
	maxFailingFiles = 1000
	maxStateChanges = 500
	maxReleaseFiles = 20000
)

// successes are the results that are not failures.
const successSQL = `('ok', 'unchanged')`

// Reporter answers report queries from the database.
type Reporter struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// New returns a Reporter reading pool. now is the clock of the window's
// end; nil means time.Now.
func New(pool *pgxpool.Pool, now func() time.Time) *Reporter {
	if now == nil {
		now = time.Now
	}
	return &Reporter{pool: pool, now: now}
}

// Window is the time range a report covers: [Since, Until).
type Window struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}
