// Package checks holds the probers that look at one file (or base URL) on one
// mirror and say what they found as a Kind.
//
// The design follows prometheus/blackbox_exporter: one prober per kind of
// check behind one signature (Prober), all sharing one Client that owns the
// connection pool, the retry policy and the limits. The probers are:
//
//   - Head: presence and size, cheaply (HEAD, falling back to a one-byte
//     range GET when the mirror does not report a size);
//   - Verify: size and checksum, streaming the body through the hash;
//   - Reachable: does the mirror answer HTTP at all;
//   - Sample: size and some blocks, read with ranges the way the mirror's
//     server answers them (RangeWay: rangeway.go, rangeanswer.go), and
//     Touch: one byte, to prime a cache.
//
// sentry talks to hundreds of mirrors it does not control, so nothing a
// mirror sends is trusted: bodies are bounded by the expected size, headers
// by MaxHeaderBytes, redirects by MaxRedirects (and never downgrade https to
// http), slow bodies by BodyIdleTimeout, retries by Retries and RetryWaitMax
// (a mirror's Retry-After included), and every string that reaches a Result
// is length-bounded, valid UTF-8 and free of URL credentials and queries.
//
// Retries happen inside a probe only for what happens before the response
// headers (connection errors, timeouts, temporary DNS failures, 5xx, 429).
// A body that breaks or stalls after a 200 is reported as is (truncated,
// timeout): the hysteresis across checks, not a re-download, deals with it.
//
// A probe whose parent context is cancelled (or expires) returns
// KindInternal with Err wrapping ctx.Err(); callers check ctx.Err() and drop
// such results instead of blaming the mirror.
//
// The package starts no goroutines of its own. Every response body it opens
// is closed before the prober returns (after a bounded drain, so keep-alive
// connections are reused).
package checks
