package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// classifyError maps a transport or body error to a Kind and a short detail.
// It does not know about the parent context: callers check that first, so a
// cancelled check is never blamed on the mirror.
//
// Order matters: a DNS timeout is dns, a TLS handshake timeout is timeout,
// a TLS alert is tls, and whatever is left after the specific cases is a
// broken connection (connect).
func classifyError(err error) (Kind, string) {
	if err == nil {
		return KindOK, ""
	}
	msg := innermost(err)
	var refused *RedirectRefusedError
	switch {
	case errors.As(err, &refused):
		var ue *url.Error
		if errors.As(err, &ue) && ue.URL != "" {
			return KindRedirect, fmt.Sprintf("redirect to %s refused: %s", clip(ue.URL, maxURL), refused.reason())
		}
		return KindRedirect, msg
	case errors.Is(err, ErrBodyIdle):
		return KindTimeout, msg
	case errors.Is(err, ErrRedirect):
		return KindRedirect, msg
	case errors.Is(err, ErrInvalidTarget), errors.Is(err, ErrGuarded):
		return KindInternal, msg
	case headersTooLarge(err):
		return KindTooLarge, "response headers too large (over the MaxHeaderBytes limit)"
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return KindDNS, fmt.Sprintf("DNS lookup of %s failed: %s", clip(de.Name, 100), clip(de.Err, 100))
	}
	if isTLSError(err) {
		return KindTLS, "TLS: " + msg
	}
	if isTimeout(err) {
		return KindTimeout, "timeout: " + msg
	}
	if strings.Contains(err.Error(), "tls: ") {
		return KindTLS, "TLS: " + msg
	}
	if errors.Is(err, context.Canceled) {
		// Not the parent (checked by the caller) and not the idle timer:
		// should not happen, and is not the mirror's fault.
		return KindInternal, msg
	}
	// Refused, reset, aborted, unreachable, EOF before the answer, a
	// malformed answer: the connection with the mirror failed.
	return KindConnect, "connection failed: " + msg
}

// headersTooLarge matches the transport's errors for response headers over
// MaxResponseHeaderBytes (HTTP/1 and HTTP/2). They are not typed, so the
// message is matched.
func headersTooLarge(err error) bool {
	s := err.Error()
	return strings.Contains(s, "server response headers exceeded") ||
		strings.Contains(s, "response header list larger than")
}

func isTLSError(err error) bool {
	var (
		cve  *tls.CertificateVerificationError
		uae  x509.UnknownAuthorityError
		he   x509.HostnameError
		cie  x509.CertificateInvalidError
		rhe  tls.RecordHeaderError
		ae   tls.AlertError
		ech  *tls.ECHRejectionError
		oe   *net.OpError
		sce  x509.SystemRootsError
		uace x509.UnhandledCriticalExtension
	)
	switch {
	case errors.As(err, &cve), errors.As(err, &uae), errors.As(err, &he), errors.As(err, &cie),
		errors.As(err, &rhe), errors.As(err, &ae), errors.As(err, &ech), errors.As(err, &sce),
		errors.As(err, &uace), errors.Is(err, http.ErrSchemeMismatch):
		return true
	case errors.As(err, &oe) && (oe.Op == "remote error" || oe.Op == "local error"):
		// crypto/tls reports alerts as *net.OpError with these ops.
		return true
	}
	return false
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// innermost returns the message of err without the "Get \"url\": " prefix
// that *url.Error adds (the URL is reported elsewhere, redacted), bounded.
func innermost(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	return clip(err.Error(), 200)
}
