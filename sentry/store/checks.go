package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run kinds and outcomes: the words of sentry_runs.kind and .outcome.
const (
	RunPrime     = "prime"
	RunSweep     = "sweep"
	RunDeepSweep = "deep_sweep"

	OutcomeRunning     = "running"
	OutcomeCompleted   = "completed"
	OutcomeGuarded     = "guarded"
	OutcomeInterrupted = "interrupted"
	OutcomeFailed      = "failed"
)

// Check is one recorded check of a file (or, with Path "", of a mirror).
type Check struct {
	RunID       int64
	MirrorID    int
	ReleaseID   int64 // 0: not about a release file
	Path        string
	CheckedAt   time.Time
	Vantage     string
	Method      string // HEAD, GET, POST or POLL
	Result      string // ok, unchanged, or a failure kind
	Status      int
	Bytes       int64
	Hashed      bool
	Duration    time.Duration
	Attempts    int
	CacheStatus string
	Detail      string
	// Validators and size the mirror reported, kept in the file state for
	// conditional requests of later sweeps.
	ETag, LastModified string
	Size               int64
	// Fence, when set, is the lease the check was made under: the check
	// is written only while that lease is still its maker's.
	Fence Fence
	// Routine: the check found what was known already (the file as its
	// state says, the mirror reachable): it is only counted, by the hour
	// (a Count), and writes no row of its own.
	Routine bool
	// Listed, when set, is what an rsync listing said of the file
	// (checks.Listed.Fact), kept in its state for the next listing.
	Listed string
	// Family is the address family the check was made over ("ipv4",
	// "ipv6"; "": the system chose).
	Family string
	// Beside: the check was made over another address family beside the
	// check that speaks for the file (a dual-stack mirror's files are
	// checked over each family): it is recorded and counted, and never
	// changes the file's state.
	Beside bool
	// FailedOver, on the check that speaks for a file, is the address
	// family the file failed over alone (FailedKind, FailedDetail) while
	// this check, over another family, found it right: the file state
	// records that failure, with the family, and this check's validators,
	// size and verification — what the other families serve.
	FailedOver, FailedKind, FailedDetail string
	// SampleBlocks of the file's FileBlocks blocks were compared with the
	// master's block digests (0: the check sampled nothing).
	SampleBlocks, FileBlocks int
}

// Count is a number of routine checks of one mirror in one UTC hour, from
// one vantage point, with one result: what sentry_check_hourly adds up.
type Count struct {
	MirrorID int
	Hour     time.Time
	Vantage  string
	Result   string
	N        int64
	// Last is the time of the newest check counted.
	Last time.Time
	// Fence is the lease the checks were made under, as for Check.
	Fence Fence
}

// Key is what a Count adds to: the hourly row, and the fence.
type CountKey struct {
	MirrorID int
	Hour     time.Time
	Vantage  string
	Result   string
	Fence    Fence
}

// Key returns the count's key.
func (c Count) Key() CountKey {
	return CountKey{MirrorID: c.MirrorID, Hour: c.Hour, Vantage: c.Vantage, Result: c.Result, Fence: c.Fence}
}

// CountOf is the Count of one check.
func CountOf(c Check) Count {
	return Count{MirrorID: c.MirrorID, Hour: c.CheckedAt.UTC().Truncate(time.Hour), Vantage: c.Vantage, Result: c.Result,
		N: 1, Last: c.CheckedAt, Fence: c.Fence}
}

// Batch is what one write records: checks that changed something (a row
// each) and counts of routine ones.
type Batch struct {
	Checks []Check
	Counts []Count
}

// Verification says how the check verified the file's bytes: "full"
// (hashed in full), "sampled" (some blocks compared), or "" (not at all).
func (c *Check) Verification() string {
	switch {
	case c.Hashed:
		return VerifiedFull
	case c.SampleBlocks > 0:
		return VerifiedSampled
	}
	return ""
}

// How a file's bytes were verified (sentry_file_state.verified_by).
const (
	VerifiedFull    = "full"
	VerifiedSampled = "sampled"
)

var checkColumns = []string{"run_id", "mirror_id", "release_id", "path", "checked_at", "vantage", "method", "result",
	"status", "bytes", "hashed", "duration_ms", "attempts", "cache_status", "detail", "family", "sample_blocks", "file_blocks"}

// WriteChecks records a batch in one transaction: either the whole batch
// is stored or none of it. Its checks are copied (not inserted one by one)
// into sentry_checks and bring the file state of their files up to date;
// they and its counts are added to the hourly counts. Checks and counts
// whose fence no longer holds (their work was taken over) are left out;
// fenced counts the checks they stand for.
func (s *Store) WriteChecks(ctx context.Context, b Batch) (fenced int, err error) {
	if len(b.Checks) == 0 && len(b.Counts) == 0 {
		return 0, nil
	}
	b = splitRoutine(b)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		checks, counts, n, err := admitBatch(ctx, tx, b)
		if err != nil {
			return fmt.Errorf("check fences: %w", err)
		}
		fenced = n
		if err := addHourly(ctx, tx, checks, counts); err != nil {
			return err
		}
		if len(checks) == 0 {
			return nil
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"sentry_checks"}, checkColumns,
			pgx.CopyFromSlice(len(checks), func(i int) ([]any, error) {
				c := &checks[i]
				var rel, status, bytes, sampled, blocks any
				if c.ReleaseID != 0 {
					rel = c.ReleaseID
				}
				if c.SampleBlocks > 0 {
					sampled, blocks = c.SampleBlocks, c.FileBlocks
				}
				if c.Status != 0 {
					status = c.Status
				}
				if c.Bytes >= 0 {
					bytes = c.Bytes
				}
				return []any{c.RunID, c.MirrorID, rel, c.Path, c.CheckedAt, c.Vantage, c.Method, c.Result,
					status, bytes, c.Hashed, int32(min(c.Duration.Milliseconds(), 1<<31-1)), max(c.Attempts, 1),
					c.CacheStatus, c.Detail, c.Family, sampled, blocks}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy checks: %w", err)
		}
		return upsertFileState(ctx, tx, checks)
	})
	if err != nil {
		return 0, s.wrap(fmt.Sprintf("write %d checks and %d counts", len(b.Checks), len(b.Counts)), err)
	}
	return fenced, nil
}

// splitRoutine turns the routine checks of b into counts.
func splitRoutine(b Batch) Batch {
	routine := 0
	for i := range b.Checks {
		if b.Checks[i].Routine {
			routine++
		}
	}
	if routine == 0 {
		return b
	}
	out := Batch{Checks: make([]Check, 0, len(b.Checks)-routine), Counts: append([]Count(nil), b.Counts...)}
	for _, c := range b.Checks {
		if c.Routine {
			out.Counts = append(out.Counts, CountOf(c))
		} else {
			out.Checks = append(out.Checks, c)
		}
	}
	return out
}

// admitBatch returns the checks and counts of b whose fences hold, and how
// many checks it left out.
func admitBatch(ctx context.Context, tx pgx.Tx, b Batch) ([]Check, []Count, int, error) {
	fences := make([]Fence, 0, len(b.Checks)+len(b.Counts))
	for i := range b.Checks {
		fences = append(fences, b.Checks[i].Fence)
	}
	for i := range b.Counts {
		fences = append(fences, b.Counts[i].Fence)
	}
	if len(fences) == 0 {
		return nil, nil, 0, nil
	}
	held, err := admit(ctx, tx, fences)
	if err != nil {
		return nil, nil, 0, err
	}
	if len(held) == 1 && held[fences[0]] {
		return b.Checks, b.Counts, 0, nil // one lease, still held: the common case
	}
	checks := make([]Check, 0, len(b.Checks))
	for i := range b.Checks {
		if held[b.Checks[i].Fence] {
			checks = append(checks, b.Checks[i])
		}
	}
	counts := make([]Count, 0, len(b.Counts))
	fenced := len(b.Checks) - len(checks)
	for i := range b.Counts {
		if held[b.Counts[i].Fence] {
			counts = append(counts, b.Counts[i])
		} else {
			fenced += int(b.Counts[i].N)
		}
	}
	return checks, counts, fenced, nil
}

// addHourly adds checks and counts to the hourly counts (by mirror, UTC
// hour, vantage and result) that reports read, with the newest check of
// each.
func addHourly(ctx context.Context, tx pgx.Tx, checks []Check, counts []Count) error {
	type key struct {
		mirror  int
		hour    time.Time
		vantage string
		result  string
	}
	type sum struct {
		n    int64
		last time.Time
	}
	sums := map[key]sum{}
	add := func(k key, n int64, last time.Time) {
		s := sums[k]
		s.n += n
		if last.After(s.last) {
			s.last = last
		}
		sums[k] = s
	}
	for i := range checks {
		c := &checks[i]
		add(key{c.MirrorID, c.CheckedAt.UTC().Truncate(time.Hour), c.Vantage, c.Result}, 1, c.CheckedAt)
	}
	for _, c := range counts {
		add(key{c.MirrorID, c.Hour, c.Vantage, c.Result}, c.N, c.Last)
	}
	if len(sums) == 0 {
		return nil
	}
	n := len(sums)
	mirrors, hours, vantages, results, ns, lasts := make([]int32, 0, n), make([]time.Time, 0, n), make([]string, 0, n),
		make([]string, 0, n), make([]int64, 0, n), make([]time.Time, 0, n)
	for k, v := range sums {
		mirrors, hours, vantages, results, ns, lasts = append(mirrors, int32(k.mirror)), append(hours, k.hour),
			append(vantages, k.vantage), append(results, k.result), append(ns, v.n), append(lasts, v.last)
	}
	// Rows are upserted in key order so that concurrent writers (several
	// sentries) take row locks in one order.
	_, err := tx.Exec(ctx, `
		INSERT INTO sentry_check_hourly AS h (mirror_id, hour, vantage, result, n, last_at)
		SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[])
		ORDER BY 1, 2, 3, 4
		ON CONFLICT (mirror_id, hour, vantage, result) DO UPDATE SET n = h.n + excluded.n,
			last_at = greatest(h.last_at, excluded.last_at)`,
		mirrors, hours, vantages, results, ns, lasts)
	if err != nil {
		return fmt.Errorf("count checks by the hour: %w", err)
	}
	return nil
}

// keepsMismatch is true when a check (excluded) does not settle what only
// reading the body found (fs: a wrong checksum, a body longer than the
// file): an unhashed check, a HEAD, that found the file present.
const keepsMismatch = `(fs.result IN ('checksum_mismatch', 'too_large') AND excluded.result IN ('ok', 'unchanged') AND excluded.hashed_at IS NULL)`

// presentSQL: the check that updates a file state (excluded) found the
// file there — present, or unchanged — over its own address family, be
// the file failing over another family alone (failed_over): what the
// state knows of the copy (validators, verification) is kept or renewed.
const presentSQL = `(excluded.result IN ('ok', 'unchanged') OR excluded.failed_over <> '')`

// upsertFileState folds checks of release files into sentry_file_state.
// Within a batch the last check of a file wins. Checks of kind internal say
// nothing about the mirror and leave the state alone.
func upsertFileState(ctx context.Context, tx pgx.Tx, checks []Check) error {
	type key struct {
		mirror  int
		release int64
		path    string
	}
	last := map[key]int{}
	for i, c := range checks {
		if c.ReleaseID == 0 || c.Path == "" || c.Result == "internal" || c.Beside {
			continue
		}
		last[key{c.MirrorID, c.ReleaseID, c.Path}] = i
	}
	if len(last) == 0 {
		return nil
	}
	n := len(last)
	var (
		mirrors  = make([]int32, 0, n)
		releases = make([]int64, 0, n)
		paths    = make([]string, 0, n)
		results  = make([]string, 0, n)
		owns     = make([]string, 0, n)
		times    = make([]time.Time, 0, n)
		verified = make([]string, 0, n)
		sizes    = make([]*int64, 0, n)
		etags    = make([]string, 0, n)
		lastMods = make([]string, 0, n)
		details  = make([]string, 0, n)
		listed   = make([]string, 0, n)
		over     = make([]string, 0, n)
	)
	// In key order: the rows and index pages touched one after another,
	// and two batches never wait for each other's rows in a cycle.
	order := make([]int, 0, n)
	for _, i := range last {
		order = append(order, i)
	}
	slices.SortFunc(order, func(a, b int) int {
		ca, cb := &checks[a], &checks[b]
		return cmp.Or(cmp.Compare(ca.MirrorID, cb.MirrorID), cmp.Compare(ca.ReleaseID, cb.ReleaseID), strings.Compare(ca.Path, cb.Path))
	})
	for _, i := range order {
		c := &checks[i]
		mirrors = append(mirrors, int32(c.MirrorID))
		releases = append(releases, c.ReleaseID)
		paths = append(paths, c.Path)
		res, detail := c.Result, c.Detail
		if c.FailedOver != "" {
			res, detail = c.FailedKind, c.FailedDetail
		}
		results = append(results, res)
		owns = append(owns, c.Result)
		times = append(times, c.CheckedAt)
		verified = append(verified, c.Verification())
		var size *int64
		if c.Size >= 0 {
			size = &c.Size
		}
		sizes = append(sizes, size)
		etags = append(etags, c.ETag)
		lastMods = append(lastMods, c.LastModified)
		details = append(details, detail)
		listed = append(listed, c.Listed)
		over = append(over, c.FailedOver)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO sentry_file_state AS fs (mirror_id, release_id, path, result, last_checked_at,
			verified_at, hashed_at, verified_by, failing_since, size, etag, last_modified, detail, listed, failed_over)
		SELECT m, r, p, res, t,
		       CASE WHEN own = 'ok' AND v <> '' THEN t END,
		       CASE WHEN own = 'ok' AND v = 'full' THEN t END,
		       CASE WHEN own = 'ok' THEN v ELSE '' END,
		       CASE WHEN res NOT IN ('ok', 'unchanged') THEN t END,
		       sz, et, lm, d, ls, fo
		FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
		            $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])
		     AS u(m, r, p, res, t, v, sz, et, lm, d, ls, fo, own)
		ON CONFLICT (mirror_id, release_id, path) DO UPDATE SET
			-- "unchanged" (a 304) confirms the previous result, and so does
			-- a HEAD of the right size, or a sample of right blocks, on a
			-- file whose body was wrong: only a full hash clears a checksum
			-- mismatch (it may be one block) or an overlong body.
			result = CASE WHEN excluded.result = 'unchanged' OR `+keepsMismatch+` THEN fs.result ELSE excluded.result END,
			last_checked_at = excluded.last_checked_at,
			-- verified_at and verified_by: the last verification of the
			-- bytes, full or sampled; hashed_at: the last full hash, which
			-- deep sweeps rotate on (a pair only ever sampled is one never
			-- hashed). A file failing over one address family alone keeps
			-- them for the families that serve it right (`+presentSQL+`).
			verified_at = CASE WHEN excluded.verified_at IS NOT NULL AND NOT `+keepsMismatch+` THEN excluded.verified_at
			                   WHEN `+presentSQL+` THEN fs.verified_at END,
			verified_by = CASE WHEN excluded.verified_at IS NOT NULL AND NOT `+keepsMismatch+` THEN excluded.verified_by
			                   WHEN `+presentSQL+` THEN fs.verified_by ELSE '' END,
			hashed_at = CASE WHEN excluded.hashed_at IS NOT NULL THEN excluded.hashed_at
			                 WHEN `+presentSQL+` THEN fs.hashed_at END,
			failing_since = CASE WHEN `+keepsMismatch+` THEN fs.failing_since
			                     WHEN excluded.result IN ('ok', 'unchanged') THEN NULL
			                     ELSE coalesce(fs.failing_since, excluded.failing_since) END,
			size = coalesce(excluded.size, fs.size),
			-- The validators of a present file, and of a wrong body (so
			-- that a sweep sees when the mirror replaces it).
			etag = CASE WHEN (`+presentSQL+` OR excluded.result IN ('checksum_mismatch', 'too_large')) AND excluded.etag <> '' THEN excluded.etag
			            WHEN `+presentSQL+` THEN fs.etag ELSE '' END,
			last_modified = CASE WHEN (`+presentSQL+` OR excluded.result IN ('checksum_mismatch', 'too_large')) AND excluded.last_modified <> ''
			                          THEN excluded.last_modified
			                     WHEN `+presentSQL+` THEN fs.last_modified ELSE '' END,
			detail = CASE WHEN excluded.result = 'unchanged' OR `+keepsMismatch+` THEN fs.detail ELSE excluded.detail END,
			-- A hash settles the pair; a changed validator or size since
			-- the last hash asks for the next deep sweep to hash it again.
			rehash = CASE WHEN excluded.hashed_at IS NOT NULL THEN false
			              WHEN (excluded.result = 'ok' OR excluded.failed_over <> '') AND (
			                   (excluded.etag <> '' AND fs.etag <> '' AND excluded.etag <> fs.etag)
			                OR (excluded.last_modified <> '' AND fs.last_modified <> '' AND excluded.last_modified <> fs.last_modified)
			                OR (excluded.size IS NOT NULL AND fs.size IS NOT NULL AND excluded.size <> fs.size)) THEN true
			              ELSE fs.rehash END,
			listed = CASE WHEN excluded.listed <> '' THEN excluded.listed ELSE fs.listed END,
			failed_over = excluded.failed_over`,
		mirrors, releases, paths, results, times, verified, sizes, etags, lastMods, details, listed, over, owns)
	if err != nil {
		return fmt.Errorf("update file state: %w", err)
	}
	return nil
}
