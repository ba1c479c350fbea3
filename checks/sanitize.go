package checks

import (
	"net/url"

	"github.com/mirrorsentry/sentry/checks/safetext"
)

// safeURL renders u without user info, query or fragment, bounded: a
// redirect target's query may carry a token, so a URL from a mirror
// loses it too (safetext.URL, for base URLs shown to people, keeps it).
func safeURL(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return clip(v.String(), maxURL)
}

// clip makes s safe for reports and the database: the rules of
// safetext.Text (valid UTF-8; control characters, bidirectional controls
// and line separators replaced by visible text), then at most n bytes
// (cut on a rune boundary, "…" appended when cut). The text a check keeps
// from a mirror is thus stored as every output shows it.
func clip(s string, n int) string {
	if len(s) <= n && printable(s) {
		return s // the common case, without a copy
	}
	s = safetext.Text(s)
	if len(s) <= n {
		return s
	}
	const ell = "…"
	cut := max(n-len(ell), 0)
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// printable reports whether s is printable ASCII only (what clip leaves
// as it is).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
