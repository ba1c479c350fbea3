package checks

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Kind is the outcome of one check of one file (or base URL) on one mirror.
//
// The failure kinds are exactly the words of docs/CONTRACTS.md, section 5
// (Failure kinds); the same word is stored in the database, printed in
// reports, emitted in JSON and used as a metrics label, so the string values
// are a compatibility contract and must never change. Two further kinds
// describe success: KindOK and KindUnchanged.
//
// Kinds fall into three groups that decide what sentry does with a location:
//   - Definitive failures (see Definitive): the file is missing or wrong, the
//     location goes inactive.
//   - Transient failures (see Transient): the mirror is in trouble, the
//     location keeps its active flag and is marked unhealthy.
//   - KindInternal: a fault of sentry's own (including a cancelled check). It
//     is neither definitive nor transient and must never be blamed on the
//     mirror.
type Kind string

// The kinds. KindOK and KindUnchanged are successes; every other kind is a
// failure.
const (
	// KindOK: the check passed (file present, size and checksum right, or
	// mirror reachable).
	KindOK Kind = "ok"
	// KindUnchanged: a conditional request (If-None-Match /
	// If-Modified-Since) was answered 304 Not Modified: the file is as it
	// was at the earlier check that produced the validators.
	KindUnchanged Kind = "unchanged"

	// KindNotFound: HTTP 404 or 410.
	KindNotFound Kind = "not_found"
	// KindForbidden: HTTP 401 or 403.
	KindForbidden Kind = "forbidden"
	// KindSizeMismatch: the size the mirror declared or delivered differs
	// from the manifest's.
	KindSizeMismatch Kind = "size_mismatch"
	// KindChecksumMismatch: the full body was read but its hash differs
	// from the manifest's.
	KindChecksumMismatch Kind = "checksum_mismatch"
	// KindTimeout: connect, TLS handshake, response header or body-idle
	// timeout.
	KindTimeout Kind = "timeout"
	// KindConnect: connection refused, reset, unreachable, or broken.
	KindConnect Kind = "connect"
	// KindDNS: the mirror's host name did not resolve.
	KindDNS Kind = "dns"
	// KindTLS: TLS handshake or certificate verification failed.
	KindTLS Kind = "tls"
	// KindHTTPStatus: an HTTP status that is neither success nor one of the
	// statuses with their own kind (5xx after retries, 429, 400, ...).
	KindHTTPStatus Kind = "http_status"
	// KindRedirect: a redirect was refused (too many, a loop, an
	// https→http downgrade, or a non-HTTP scheme).
	KindRedirect Kind = "redirect"
	// KindTooLarge: the body (or the response headers) exceeded the bound.
	KindTooLarge Kind = "too_large"
	// KindTruncated: the transfer broke before the declared size arrived.
	KindTruncated Kind = "truncated"
	// KindNotPrimed: the file was not present by the priming deadline. The
	// probers in this package never return it; the primer does.
	KindNotPrimed Kind = "not_primed"
	// KindInternal: sentry's own fault (a cancelled check, an invalid
	// target). Never blamed on the mirror.
	KindInternal Kind = "internal"
)

// ErrUnknownKind is returned (wrapped) by ParseKind and Kind.UnmarshalText
// for a word that is not a kind.
var ErrUnknownKind = errors.New("unknown check kind")

// allKinds is in a stable order: successes first, then the failure kinds in
// the order of docs/CONTRACTS.md, section 5 (Failure kinds).
var allKinds = [...]Kind{
	KindOK, KindUnchanged,
	KindNotFound, KindForbidden, KindSizeMismatch, KindChecksumMismatch,
	KindTimeout, KindConnect, KindDNS, KindTLS, KindHTTPStatus,
	KindRedirect, KindTooLarge, KindTruncated, KindNotPrimed, KindInternal,
}

// AllKinds returns every kind, successes first, then the failure kinds in the
// order of docs/CONTRACTS.md, section 5 (Failure kinds). It returns a fresh
// slice each call, so callers may modify it (for example to pre-create metric
// series or report columns).
func AllKinds() []Kind {
	out := make([]Kind, len(allKinds))
	copy(out, allKinds[:])
	return out
}

// ParseKind returns the Kind spelled s. The match is exact (lower case, as
// stored); anything else is an error wrapping ErrUnknownKind.
func ParseKind(s string) (Kind, error) {
	for _, k := range allKinds {
		if string(k) == s {
			return k, nil
		}
	}
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return "", fmt.Errorf("checks: %w %q", ErrUnknownKind, s)
}

// Valid reports whether k is one of the kinds listed by AllKinds.
func (k Kind) Valid() bool {
	_, err := ParseKind(string(k))
	return err == nil
}

// Failed reports whether k is a failure, that is anything but KindOK and
// KindUnchanged. An invalid (unknown) kind counts as failed.
func (k Kind) Failed() bool {
	return k != KindOK && k != KindUnchanged
}

// Definitive reports whether k says the file is missing or wrong, so the
// location must go inactive: not_found, forbidden, size_mismatch,
// checksum_mismatch, too_large and not_primed.
func (k Kind) Definitive() bool {
	switch k {
	case KindNotFound, KindForbidden, KindSizeMismatch, KindChecksumMismatch,
		KindTooLarge, KindNotPrimed:
		return true
	}
	return false
}

// Transient reports whether k says the mirror is in trouble (the location
// keeps its active flag and is marked unhealthy): timeout, connect, dns, tls,
// http_status, redirect and truncated. KindInternal is neither definitive nor
// transient.
func (k Kind) Transient() bool {
	switch k {
	case KindTimeout, KindConnect, KindDNS, KindTLS, KindHTTPStatus,
		KindRedirect, KindTruncated:
		return true
	}
	return false
}

// String returns the kind's word.
func (k Kind) String() string { return string(k) }

// MarshalText implements encoding.TextMarshaler. It refuses invalid kinds so
// that a typo never reaches the database or a report.
func (k Kind) MarshalText() ([]byte, error) {
	if !k.Valid() {
		_, err := ParseKind(string(k))
		return nil, err
	}
	return []byte(k), nil
}

// UnmarshalText implements encoding.TextUnmarshaler using ParseKind.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// CountsText says how many of each kind counts holds, sorted by kind:
// "not_found 2, timeout 1".
func CountsText(counts map[Kind]int) string {
	parts := make([]string, 0, len(counts))
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
