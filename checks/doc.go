// Package checks holds the checks that look at a mirror — one file, or its
// base URL — and say what they found as a Result with a Kind.
//
// The design follows prometheus/blackbox_exporter: every HTTP check goes
// through one Client, which owns the connection pool, the retry policy,
// the redirect policy and the limits, and returns a Result classified the
// same way. The checks do not all share one signature, since they do not
// all need the same things:
//
//   - Head and Verify check one file from its Target alone, and share one
//     signature, Prober. Head: presence and size, cheaply (HEAD, falling
//     back to a one-byte range GET when the mirror does not report a
//     size). Verify: size and checksum, streaming the body through the
//     hash.
//   - Touch(ctx, c, t) and TouchAt(ctx, c, t, off) read one byte, which
//     primes a pull-through cache that keeps what it fetches for a range,
//     and say whether the server honoured the range (touch.go).
//   - Sample(ctx, c, t, blocks, pick, way) compares some blocks of a file
//     with the master's block digests (Blocks), read with ranges the way
//     the mirror's server answers them, and returns what it learned of
//     that way (RangeWay: rangeway.go, rangeanswer.go). Digest(ctx, c, t,
//     blockSize) reads the block digests from the master's copy while
//     verifying it in full.
//   - Reachable(ctx, c, baseURL): does the mirror answer HTTP at all (and
//     with which certificate).
//   - FetchIfChanged(ctx, c, url, limit, etag, lastModified) reads a
//     document sentry uses itself (a release manifest), returning its body
//     bounded by limit.
//   - Post and Purge send a request rather than check a file: a mirror's
//     trigger, a cache's purge.
//   - ListRsync lists a mirror's release tree over rsync, with the rsync
//     client rather than the Client (rsync.go).
//
// sentry talks to hundreds of mirrors it does not control, so nothing a
// mirror sends is trusted: bodies are bounded by the expected size, headers
// by MaxHeaderBytes, redirects by MaxRedirects (they never downgrade https
// to http, never reach sentry's own network from a mirror that is not on
// it, and never take a Post's headers to another host: redirectpolicy.go),
// slow bodies by MinRate over every BodyIdleTimeout window (minrate.go:
// a body of size bytes takes at most MaxBodyTime), retries by Retries and
// RetryWaitMax (a mirror's Retry-After included), and every string that
// reaches a Result is length-bounded, valid UTF-8, free of URL credentials
// and queries, and holds no control or bidirectional character (sanitize.go,
// with the rules of package safetext).
//
// Retries happen inside a check only for what happens before the response
// headers (connection errors, timeouts, temporary DNS failures, 5xx, 429).
// A body that breaks or stalls after a 200 is reported as is (truncated,
// timeout): the hysteresis across checks, not a re-download, deals with it.
//
// A check whose parent context is cancelled (or expires) returns
// KindInternal with Err wrapping ctx.Err(); callers check ctx.Err() and drop
// such results instead of blaming the mirror.
//
// The package starts no goroutines of its own (ListRsync runs the rsync
// client as a child process, killed with its context). Every response body
// it opens is closed before the check returns (after a bounded drain, so
// keep-alive connections are reused), except the body FetchIfChanged
// hands to its caller.
//
// Where things are: result.go (Target, Result, Prober); probe.go (what
// every HTTP check shares: one request with retries, the classification of
// statuses); classify.go and kind.go (the Kinds, and errors as Kinds);
// head.go, verify.go, reachable.go, sample.go with blocks.go, fetch.go,
// post.go and rsync.go (the checks); sanitize.go (text from mirrors made
// fit for reports); client.go (the Client), minrate.go (the minimum rate
// of bodies) and redirectpolicy.go (where redirects may go).
package checks
