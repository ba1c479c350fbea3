package checks

import (
	"net/url"
	"strings"
)

// safeURL renders u without user info, query or fragment, bounded.
func safeURL(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return clip(v.String(), maxURL)
}

// clip makes s safe for reports and the database: valid UTF-8, control
// characters replaced by spaces, at most n bytes (cut on a rune boundary,
// "…" appended when cut).
func clip(s string, n int) string {
	if len(s) <= n && printable(s) {
		return s // the common case, without a copy
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
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
