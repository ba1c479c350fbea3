// Package primer primes one mirror with the files of a release and reports
// one outcome per file.
//
// `sentry prime --release R` makes every active mirror pull the new files;
// this package does it for ONE mirror, by the mirror's prime mode
// (docs/CONTRACTS.md, sections 3 (sentry's own per-mirror settings) and 8
// (The trigger)):
//
//   - pull: the mirror is a pull-through cache; a GET through it makes it fetch
//     the file from the master. The GET is checks.Verify, so priming and
//     verifying are one pass. A follow-up HEAD records whether the cache now
//     holds the file. A sampled prime (Config.Sampled) primes a cache that
//     keeps what it fetches for a range with a one-byte range and verifies
//     the file by sampling its blocks; whether it does is learned per
//     mirror (learn.go), and how its server answers ranges (range.go).
//   - trigger: a signed POST tells the mirror to sync, then the files are
//     polled for as in passive mode.
//   - passive: the mirror syncs on its own schedule; the files are polled for
//     (HEAD) until each is present with the right size, then verified (a
//     GET in full, or of sampled blocks), or the deadline passes
//     (not_primed).
//
// Choosing the mirrors, recording outcomes and marking the bouncer tables are
// the caller's business. Prime is polite: at most Mirror.Concurrency requests
// in flight to the mirror, each also holding one unit of an optional global
// semaphore, and a mirror that has not started syncing is only sampled, not
// swept, at every poll round.
package primer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// Mode is a mirror's prime mode, as stored in
// sentry_mirror_settings.prime_mode.
type Mode string

// The prime modes.
const (
	// ModePull: a pull-through cache (nginx proxy_cache, Apache mod_cache,
	// Squid, Varnish); priming is a GET.
	ModePull Mode = "pull"
	// ModeTrigger: the mirror syncs when sent a signed POST; then polled.
	ModeTrigger Mode = "trigger"
	// ModePassive: the mirror syncs on its own (rsync from cron); only
	// polled.
	ModePassive Mode = "passive"
)

// Methods recorded in Outcome.Method.
const (
	// MethodGet: the outcome is a checks.Verify (GET, size and checksum).
	MethodGet = "GET"
	// MethodHead: the outcome is a poll's HEAD that cannot change by
	// polling again (KindInternal: sentry's own data is wrong).
	MethodHead = "HEAD"
	// MethodPost: the trigger POST (Outcome.Path is "").
	MethodPost = "POST"
	// MethodPoll: the file was still not present at the deadline
	// (KindNotPrimed).
	MethodPoll = "POLL"
)

// Defaults applied by Prime to zero Config fields, and bounds.
const (
	DefaultDeadline     = 20 * time.Minute
	DefaultPollInterval = 10 * time.Second
	DefaultPollMax      = 2 * time.Minute
	// MaxConcurrency caps Mirror.Concurrency whatever the settings table
	// says: a volunteer mirror must never feel attacked.
	MaxConcurrency = 64
)

// Sentinel errors.
var (
	// ErrInvalidConfig is wrapped by Prime's error for an unusable Config
	// (nil Client, negative durations) or a nil emit function.
	ErrInvalidConfig = errors.New("invalid primer configuration")
	// ErrUnknownMode is wrapped by ParseMode's error and by Prime's error
	// for a mirror whose mode is not pull, trigger or passive.
	ErrUnknownMode = errors.New("unknown prime mode")
	// ErrTriggerConfig is wrapped by the Result.Err of the KindInternal
	// outcome emitted for a trigger mirror without a trigger URL, or when
	// no trigger secret is configured.
	ErrTriggerConfig = errors.New("trigger not configured")
	// ErrNotPrimed is wrapped by the Result.Err of every KindNotPrimed
	// outcome.
	ErrNotPrimed = errors.New("not primed by the deadline")
)

// ParseMode returns the Mode spelled s. The empty string is ModePull, the
// table's default (a mirror without a settings row is a pull mirror).
// Anything else but "pull", "trigger" and "passive" (exact, lower case) is an
// error wrapping ErrUnknownMode.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModePull, nil
	case ModePull, ModeTrigger, ModePassive:
		return m, nil
	}
	if len(s) > 32 {
		s = s[:32] + "…"
	}
	return "", fmt.Errorf("primer: %w %q (want pull, trigger or passive)", ErrUnknownMode, s)
}

// File is one file of the release, from the manifest.
type File struct {
	// Path is relative to the release directory, unescaped, '/'-separated
	// ("win32/de/Firefox Setup 1.5.exe"). Validated upstream.
	Path string
	// Size is the expected size in bytes (required: Verify bounds the body
	// by it; a negative size yields a KindInternal outcome).
	Size int64
	// Algo ("sha256" or "sha512") and Hash (hex) are the manifest's
	// checksum; an empty Algo checks the size only.
	Algo, Hash string
	// PreviousHash is the file's digest before its manifest last changed
	// it ("" for none): a mirror serving those bytes serves the previous
	// version (stale), and a purgeable cache is purged (Mirror.Purge).
	PreviousHash string
	// Blocks are the block digests of the master's copy, when known: a
	// sampled prime compares blocks of the mirror's copy with them (a file
	// without them is verified in full).
	Blocks checks.Blocks
	// HashBeside: on a mirror checked over several families, the file's
	// bytes are verified over each other family too (a GET through the
	// hash), not only its presence and size: they were found wrong
	// before, which a size cannot clear (families.go).
	HashBeside bool
}

// Mirror is one mirror to prime.
type Mirror struct {
	// ID and Name identify the mirror in logs (mirror_mirrors.id, .name).
	ID   int
	Name string
	// BaseURL is mirror_mirrors.baseurl, without trailing slash. It is
	// never logged (it may carry credentials).
	BaseURL string
	// Mode is the prime mode; "" means pull (see ParseMode).
	Mode Mode
	// TriggerURL is where a trigger mirror receives its POST. It is never
	// logged nor put in a Detail (it may carry a token in its query).
	TriggerURL string
	// Concurrency is the per-mirror cap on requests in flight. Values
	// below 1 count as 1, above MaxConcurrency as MaxConcurrency.
	Concurrency int
	// Purge, when set, is how the mirror's cache drops a file it serves
	// wrong after a respin: a pull prime purges it and verifies it again.
	Purge Purge
	// Priming is how a pull mirror is primed, when learned (learn.go).
	Priming Priming
	// Ranges is how the mirror's server answers requests for several
	// ranges, as learned before (checks.RangeWay): sampled checks ask
	// that way.
	Ranges checks.RangeWay
	// Families are the address families the mirror's files are checked
	// over (families.go): none, whichever the system picks; one, that
	// one (the mirror's other family does not answer); several (a
	// dual-stack mirror answering over each), each file primed and
	// verified over the first, and its presence and size checked over
	// each other (Outcome.Beside). The trigger goes over any.
	Families []checks.Family
}

// Outcome is the final result for one file on the mirror, or for the
// mirror-level trigger POST.
type Outcome struct {
	// Path is File.Path, or "" for a mirror-level step (the trigger POST).
	Path string
	// Method is MethodGet, MethodHead, MethodPost or MethodPoll: which
	// step decided the outcome.
	Method string
	// Result is the step's result. For pull mirrors an OK Result's
	// CacheStatus ends with "after: ..." (the follow-up HEAD); a
	// KindNotPrimed Result is built by this package (Err wraps
	// ErrNotPrimed, Attempts counts the file's polls, Status, Bytes and
	// FinalURL are the last poll's).
	Result checks.Result
	// CheckedAt is when the outcome was decided.
	CheckedAt time.Time
	// Family is the address family Result was checked over (the first of
	// Mirror.Families), "" for the system's choice and for the trigger.
	Family checks.Family
	// Beside are the file's checks over the mirror's other families
	// (Mirror.Families after the first), in their order; none for a
	// mirror checked over one, and for an outcome of sentry's own fault
	// (KindInternal).
	Beside []FamilyResult
}

// Config is what Prime needs besides the mirror and the files. The same
// Config is normally shared by every mirror of a run.
type Config struct {
	// Client makes every request. Required.
	Client *checks.Client
	// Release is the release name, sent in the trigger body.
	Release string
	// ReleaseDir is the release directory with {release} substituted,
	// e.g. "/firefox/releases/1.5/"; file URLs are FileURL(BaseURL,
	// ReleaseDir, Path).
	ReleaseDir string
	// Global, when not nil, is a cap shared by every mirror: each request
	// holds one unit while in flight (not while waiting between polls).
	Global *semaphore.Weighted
	// Deadline bounds polling (trigger and passive modes), counted from the
	// start of Prime: files still absent then are not_primed. Default
	// DefaultDeadline. Pull mode has none: the client's timeouts bound each
	// request.
	Deadline time.Duration
	// PollInterval is the first wait between poll rounds; each wait
	// doubles, up to PollMax, and never runs past the deadline. Defaults
	// DefaultPollInterval and DefaultPollMax; a PollMax below PollInterval
	// is raised to it.
	PollInterval, PollMax time.Duration
	// TriggerSecret is the HMAC key of the trigger signature. Never logged.
	TriggerSecret []byte
	// Sampled verifies files that have block digests (File.Blocks) by
	// their size and SampleBlocks blocks picked by Sampler
	// (checks.Sample), and primes pull mirrors with a one-byte range where
	// the cache keeps what it fetches for one (range.go). Otherwise every
	// file is verified in full.
	Sampled      bool
	Sampler      *checks.Sampler
	SampleBlocks int
	// SampleID names the run in the id of every sampled check (SampleID),
	// so that each check of each run reads blocks of its own.
	SampleID string
	// Ready, when set, is called with each file before it is first primed
	// or verified, and gives the file as it is to be checked: a sampled
	// prime gives a file the block digests of the master's copy there,
	// waiting for that file's read from the master only (a trigger's
	// list and polls for presence do not wait). An error stops the prime,
	// as the end of ctx does: the files not yet checked get no outcome.
	Ready func(ctx context.Context, f File) (File, error)
	// Learned, when set, is told how a pull mirror whose Priming was
	// unknown turned out to be primed, or that one primed by range no
	// longer fills on one, and why.
	Learned func(by Priming, why string)
	// LearnedRanges, when set, is told how the mirror's server answers
	// ranges when a sampled check learned more of it than Mirror.Ranges
	// said (the way merged so far), and why. Calls are in order.
	LearnedRanges func(way checks.RangeWay, why string)
	// FillWait and FillTries bound how long a pull prime waits for a
	// cache to say it kept a file a one-byte range made it fetch, when the
	// request after it was a miss: FillTries requests, the first after
	// FillWait, each after twice the wait before (learn.go). Defaults
	// DefaultFillWait and DefaultFillTries.
	FillWait  time.Duration
	FillTries int
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

// withDefaults validates cfg and fills in the defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Client == nil {
		return cfg, fmt.Errorf("primer: %w: nil Client", ErrInvalidConfig)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Deadline", &cfg.Deadline, DefaultDeadline},
		{"PollInterval", &cfg.PollInterval, DefaultPollInterval},
		{"PollMax", &cfg.PollMax, DefaultPollMax},
		{"FillWait", &cfg.FillWait, DefaultFillWait},
	} {
		if *d.v < 0 {
			return cfg, fmt.Errorf("primer: %w: %s must not be negative, got %s", ErrInvalidConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	cfg.PollMax = max(cfg.PollMax, cfg.PollInterval)
	switch {
	case cfg.FillTries < 0:
		return cfg, fmt.Errorf("primer: %w: FillTries must not be negative, got %d", ErrInvalidConfig, cfg.FillTries)
	case cfg.FillTries == 0:
		cfg.FillTries = DefaultFillTries
	}
	if cfg.Sampled && (cfg.Sampler == nil || cfg.SampleBlocks < 2) {
		return cfg, fmt.Errorf("primer: %w: sampling needs a Sampler and at least 2 blocks, got %d", ErrInvalidConfig, cfg.SampleBlocks)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Prime primes mirror m with files and calls emit once per file with its
// final outcome, and, for a trigger mirror, once with Path "" and Method
// "POST" for the trigger (before any file outcome). emit may be called from
// several goroutines at once and should not block for long (it holds a
// per-mirror request slot); it is never called after Prime returns.
//
// By mode:
//   - pull: checks.Verify each file. After an OK verify, a checks.Head
//     records whether the cache now holds the file: its cache headers are
//     appended to Result.CacheStatus as "after: X-Cache-Status: HIT" ("after:
//     no cache headers" when it sent none). The follow-up is a fact, never a
//     failure: if it fails the outcome stays OK and its Detail says so.
//   - trigger: POST TriggerBody(cfg.Release, files) to m.TriggerURL, with
//     Content-Type: application/json and X-Sentry-Signature: Sign(secret,
//     body), and emit its outcome. Without a trigger URL or secret, the POST
//     outcome is KindInternal (Err wraps ErrTriggerConfig). Either way,
//     polling follows as for passive: the mirror may sync on its own.
//   - passive: poll rounds of checks.Head on the pending files, the first
//     round at once. A file present with the right size is verified at once
//     and its Verify result is final, whatever it is. Any other answer
//     (not_found, size_mismatch while syncing, forbidden, transient
//     failures) keeps the file pending, except KindInternal (sentry's own
//     data is wrong: final, Method "HEAD"). Between rounds Prime waits
//     PollInterval, doubling up to PollMax, never past the deadline (a timer
//     and ctx, no sleep). While no file of the mirror has been seen present,
//     a round probes only the first m.Concurrency pending files and stops
//     there when they all say not_found (the mirror has not started). The
//     round that starts at or after the deadline is never cut short, so
//     every not_primed file was really polled: the files still pending after
//     it get KindNotPrimed, Method "POLL", Detail like "not present after
//     20m0s (12 poll rounds); last answer: not_found 404".
//
// Families: on a mirror with Mirror.Families, the files' requests go over
// the first; on one with several, each file's outcome also carries a
// HEAD over each other family (Outcome.Beside, families.go), which the
// passive and trigger modes poll until it finds the file or the deadline
// passes.
//
// Requests: at most m.Concurrency in flight to the mirror (no goroutine per
// file beyond that), each also holding one unit of cfg.Global while in flight.
//
// Errors: an unusable Config (ErrInvalidConfig), a nil emit or an unknown mode
// (ErrUnknownMode) are returned before any request. An error of
// Config.Ready stops Prime as the end of ctx does, and is returned. When ctx is cancelled,
// Prime stops, emits nothing more (results of interrupted requests are
// dropped, never reported as failures) and returns ctx.Err() once every
// goroutine has finished; files without an outcome are simply not reported.
// Otherwise it returns nil after every file (and the trigger) got its
// outcome: mirror failures are outcomes, not errors.
func Prime(ctx context.Context, cfg Config, m Mirror, files []File, emit func(Outcome)) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if emit == nil {
		return fmt.Errorf("primer: %w: nil emit function", ErrInvalidConfig)
	}
	mode, err := ParseMode(string(m.Mode))
	if err != nil {
		return fmt.Errorf("primer: mirror %q: %w", m.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &run{
		ctx:    ctx,
		plain:  ctx,
		cfg:    cfg,
		m:      m,
		conc:   min(max(m.Concurrency, 1), MaxConcurrency),
		emitf:  emit,
		start:  time.Now(),
		log:    cfg.Logger.With("mirror", m.Name, "mirror_id", m.ID, "mode", string(mode)),
		ranges: m.Ranges,
	}
	if len(m.Families) > 0 {
		r.ctx = checks.WithFamily(ctx, m.Families[0]) // the files' requests; the trigger's go over r.plain
	}
	r.log.Debug("priming mirror", "files", len(files), "concurrency", r.conc, "families", m.Families)
	switch mode {
	case ModePull:
		err = r.pull(files)
	case ModeTrigger:
		if err = r.trigger(files); err == nil {
			err = r.poll(files)
		}
	case ModePassive:
		err = r.poll(files)
	}
	if err != nil {
		r.log.Debug("priming stopped", "err", err)
		return err
	}
	r.log.Debug("priming done", "duration", time.Since(r.start))
	return nil
}

// run is the state of one Prime call.
type run struct {
	// ctx is the files' (over the mirror's first family, when it has
	// Families); plain the trigger's (over any).
	ctx   context.Context
	plain context.Context
	cfg   Config
	m     Mirror
	conc  int
	emitf func(Outcome)
	start time.Time
	log   *slog.Logger
	// seen is set once any file of the mirror was seen present by a poll.
	seen atomic.Bool
	// mu guards what the run learns as files are primed: by, how a
	// pull mirror is primed (learnPriming, noteFill), fills, what its
	// files taught of it, and ranges, how its server answers ranges
	// (learnRanges).
	mu     sync.Mutex
	by     Priming
	fills  fills
	ranges checks.RangeWay
}

// ready is f as it is to be checked (Config.Ready).
func (r *run) ready(f File) (File, error) {
	if r.cfg.Ready == nil {
		return f, nil
	}
	return r.cfg.Ready(r.ctx, f)
}

// target is the checks target of f on the mirror.
func (r *run) target(f File) checks.Target {
	return checks.Target{
		URL:          FileURL(r.m.BaseURL, r.cfg.ReleaseDir, f.Path),
		Size:         f.Size,
		Algo:         f.Algo,
		Hash:         f.Hash,
		PreviousHash: f.PreviousHash,
	}
}

// request runs one request while holding a unit of the global semaphore. It
// returns ctx.Err() (and the result must be dropped) when the context ended
// before or during the request.
func (r *run) request(do func() checks.Result) (checks.Result, error) {
	if g := r.cfg.Global; g != nil {
		if err := g.Acquire(r.ctx, 1); err != nil {
			return checks.Result{}, err
		}
		defer g.Release(1)
	}
	if err := r.ctx.Err(); err != nil {
		return checks.Result{}, err
	}
	res := do()
	if err := r.ctx.Err(); err != nil {
		return checks.Result{}, err
	}
	return res, nil
}

// emit reports an outcome — a file's (res, over the mirror's first
// family), with its checks over the others (besides), or the trigger's
// (f zero) — unless the context has ended.
func (r *run) emit(f File, method string, res checks.Result) error {
	beside, err := r.besides(f, res)
	if err != nil {
		return err
	}
	return r.send(f.Path, method, res, beside)
}

// send reports an outcome whose checks are all made, unless the context
// has ended.
func (r *run) send(path, method string, res checks.Result, beside []FamilyResult) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	o := Outcome{Path: path, Method: method, Result: res, Beside: beside, CheckedAt: time.Now()}
	if path != "" {
		o.Family = r.family()
	}
	r.emitf(o)
	return nil
}

// pull primes a pull-through cache: Verify each file, then a follow-up HEAD
// after an OK verify; or, when sampling, a one-byte range and a sample
// where the cache fills on a range (range.go, learn.go).
func (r *run) pull(files []File) error {
	files, err := r.learnPriming(files)
	if err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(r.conc)
	stopped := false
	for _, f := range files {
		if r.ctx.Err() != nil {
			stopped = true
			break
		}
		g.Go(func() error {
			f, err := r.ready(f)
			if err != nil {
				return err
			}
			return r.pullFile(f)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if stopped {
		return r.ctx.Err()
	}
	return nil
}

func (r *run) pullOne(f File) error {
	t := r.target(f)
	res, err := r.request(func() checks.Result { return checks.Verify(r.ctx, r.cfg.Client, t) })
	if err != nil {
		return err
	}
	if res, err = r.purgeStale(f, t, res); err != nil {
		return err
	}
	if res.Kind == checks.KindOK {
		follow, err := r.request(func() checks.Result { return checks.Head(r.ctx, r.cfg.Client, t) })
		if err != nil {
			return err
		}
		res = withFollowUp(res, follow)
	}
	return r.emit(f, MethodGet, res)
}

// purgeStale purges f from a purgeable cache that serves a respun file
// wrong (res), and fetches and verifies it in full again; any other
// result is returned as it is.
func (r *run) purgeStale(f File, t checks.Target, res checks.Result) (checks.Result, error) {
	if !r.m.Purge.Set() || !NeedsPurge(f, res) {
		return res, nil // no request: no unit of the global semaphore
	}
	return r.request(func() checks.Result {
		return RefreshStale(r.ctx, r.cfg.Client, r.m.Purge, r.m.BaseURL, f, t, res)
	})
}

// withFollowUp records the follow-up HEAD of a pull prime in the verify's
// result: its cache status on success, a note in Detail on failure.
func withFollowUp(res, follow checks.Result) checks.Result {
	if follow.Kind.Failed() {
		note := fmt.Sprintf("follow-up HEAD failed: %s", follow.Kind)
		if follow.Detail != "" && follow.Detail != string(follow.Kind) {
			note += ": " + follow.Detail
		}
		res.Detail = joinDetail(res.Detail, note)
		return res
	}
	cs := follow.CacheStatus
	if cs == "" {
		cs = "no cache headers"
	}
	res.CacheStatus = joinDetail(res.CacheStatus, "after: "+cs)
	return res
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// trigger sends the trigger POST (or reports why it cannot) and emits its
// outcome.
func (r *run) trigger(files []File) error {
	var res checks.Result
	switch {
	case strings.TrimSpace(r.m.TriggerURL) == "":
		res = triggerConfigResult("trigger mirror has no trigger URL (sentry_mirror_settings.trigger_url); trigger not sent, polling only")
	case len(r.cfg.TriggerSecret) == 0:
		res = triggerConfigResult("no trigger secret configured (SENTRY_TRIGGER_SECRET); trigger not sent, polling only")
	default:
		body := TriggerBody(r.cfg.Release, files)
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("X-Sentry-Signature", Sign(r.cfg.TriggerSecret, body))
		var err error
		res, err = r.request(func() checks.Result {
			return checks.Post(r.plain, r.cfg.Client, r.m.TriggerURL, body, h)
		})
		if err != nil {
			return err
		}
	}
	r.log.Debug("trigger", "kind", string(res.Kind), "status", res.Status, "detail", res.Detail)
	return r.emit(File{}, MethodPost, res)
}

func triggerConfigResult(detail string) checks.Result {
	return checks.Result{
		Kind:   checks.KindInternal,
		Detail: detail,
		Err:    fmt.Errorf("primer: %w: %s", ErrTriggerConfig, detail),
	}
}
