package checks

import (
	"context"
	"errors"
	"time"
)

// ErrInvalidTarget is wrapped by Result.Err (with KindInternal) when a Target
// or base URL cannot be checked: sentry's own data is wrong, the mirror is not
// to blame.
var ErrInvalidTarget = errors.New("invalid check target")

// Target is one file on one mirror.
type Target struct {
	// URL is the file's absolute http or https URL, already path-escaped.
	URL string
	// Size is the expected size in bytes; -1 means unknown (Head only:
	// Verify needs a size to bound the body).
	Size int64
	// Algo is the checksum algorithm, "sha256" or "sha512"; "" skips the
	// checksum (Verify then checks the size only).
	Algo string
	// Hash is the expected digest in hex (compared case-insensitively).
	Hash string
	// ETag and LastModified are validators from an earlier check of the same
	// URL. When set they are sent as If-None-Match and If-Modified-Since and
	// a 304 answer yields KindUnchanged. Leave them empty to force a full
	// check (a deep sweep that must re-hash should).
	ETag, LastModified string
	// PreviousHash, when set, is the file's digest before its manifest
	// last changed it (same Algo): a body that hashes to it is the
	// previous version (Result.Stale).
	PreviousHash string
}

// Result is the outcome of one probe. Every string in it is bounded in length
// and valid UTF-8, whatever the mirror sent, and free of secrets (URLs lose
// their user info and query).
type Result struct {
	// Kind is the outcome; see the Kind constants.
	Kind Kind
	// Status is the HTTP status of the last answer, 0 when there was none.
	Status int
	// Bytes is the number of body bytes read (Verify, Reachable's GET) or the
	// size the mirror reported (Head: Content-Length or Content-Range
	// total; -1 when unknown).
	Bytes int64
	// Hashed is true when the whole body went through the hash and the
	// digest was compared (KindOK or KindChecksumMismatch from Verify).
	Hashed bool
	// Stale: KindChecksumMismatch, and the body is the previous version
	// of the file (Target.PreviousHash): a cache that kept what it had.
	Stale bool
	// Duration is the wall time of the whole probe, retries and body
	// included.
	Duration time.Duration
	// Attempts is the number of HTTP attempts made (retries included,
	// redirect hops not counted; Head's range fallback adds its own).
	Attempts int
	// Detail is one human-readable sentence for reports, e.g. "size 1000,
	// want 1024". Always set on failure.
	Detail string
	// ETag and LastModified are the validators of the last answer, to pass
	// back in a later Target.
	ETag, LastModified string
	// CacheStatus summarises the cache headers of the last answer (see
	// CacheStatus).
	CacheStatus string
	// Cache is what those headers say of the answer: a hit, a miss, or
	// nothing (see CacheWordOf).
	Cache CacheWord
	// Sampled is how many blocks of the file were read and compared with
	// the master's block digests (Sample; 0 for every other prober), and
	// Blocks how many blocks the file has: "Sampled of Blocks blocks".
	// SampledBytes is the size of the blocks compared.
	Sampled, Blocks int
	SampledBytes    int64
	// FinalURL is the URL that gave the last answer, after redirects,
	// without user info, query or fragment.
	FinalURL string
	// Cert is the certificate an https answer (or a failed verification)
	// came with: set by Reachable.
	Cert *Cert
	// Err is the underlying error, for logs; nil when Kind is not a
	// failure. On KindInternal from a cancelled parent context it wraps
	// ctx.Err(), so errors.Is(res.Err, context.Canceled) holds: callers
	// check ctx.Err() and drop such results.
	Err error
}

// Prober is the signature of the probers that check one file on one
// mirror and need nothing but the Target: Head and Verify. The
// other checks of the package take more, or something else, and say so
// in their own signatures (see the package documentation). Whatever its
// signature, a check never panics on mirror input, always closes what it
// opens, and returns once ctx is done (with KindInternal).
type Prober func(ctx context.Context, c *Client, t Target) Result

var (
	_ Prober = Head
	_ Prober = Verify
)
