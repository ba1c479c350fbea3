// Package safetext makes text fit for people: for terminals, pages,
// mails, chat systems fed by webhooks, and spreadsheets. It is the one
// sanitiser of sentry's outputs, and of the text the checks keep from
// mirrors (package checks), so that the rules are the same wherever a
// string is shown.
//
// What it replaces, wherever the text came from (a mirror's headers or
// certificate, an admin's mirror name, a detail sentry wrote itself):
//
//   - bytes that are not UTF-8: U+FFFD;
//   - control characters, C0 and DEL (ESC, BEL, CR, LF, TAB, …): the
//     visible "control pictures" of Unicode (␛ ␇ ␍ ␊ ␉, ␡), one column
//     each, so that a table keeps its widths and no escape sequence (a
//     colour, an OSC title or hyperlink, a cursor move) reaches a
//     terminal;
//   - C1 controls (U+0080–U+009F, among them the 8-bit CSI and OSC),
//     bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E,
//     U+200F, U+061C: the "Trojan Source" characters that reorder what a
//     reader sees) and the line and paragraph separators U+2028 and
//     U+2029: their code point, written out as "[U+202E]".
//
// A replacement is plain text, made of neither '<', '>', '&' nor quotes,
// so it is as safe in HTML and JSON as it is in a terminal. Sanitise a
// field before clipping it: a clipped replacement is still harmless
// text, whereas an escape cut in half is not.
//
// URL removes the user and password of a URL; Cell also makes a CSV cell
// that a spreadsheet would take for a formula into text; EscapeJSON
// writes what Text replaces as JSON escapes instead, for JSON that must
// keep every value exact (a mirror's name is how the API finds it).
package safetext

import (
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text returns s with every character a person should not be handed raw
// replaced by visible text (see the package documentation), on one line:
// line breaks are replaced too. s is returned as it is when nothing
// needs replacing.
func Text(s string) string { return sanitize(s, false) }

// Lines is Text for text of several lines (a table, a mail's body, a
// page): '\n' is kept, everything else is replaced as by Text.
func Lines(s string) string { return sanitize(s, true) }

// Cell is Text for a CSV cell: a cell that a spreadsheet would read as a
// formula (one starting with '=', '+', '-', '@', a tab or a carriage
// return, or their full-width forms) is prefixed with a "'", which
// spreadsheets take for "this is text" (OWASP's advice on CSV injection).
// A number ("-3", "0.25") is left as it is: it is no formula.
func Cell(s string) string {
	if s == "" {
		return s
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	r, _ := utf8.DecodeRuneInString(s) // before Text: a tab or CR is replaced by then
	s = Text(s)
	if strings.ContainsRune("=+-@\t\r\uFF1D\uFF0B\uFF0D\uFF20", r) {
		return "'" + s
	}
	return s
}

// Replaced reports whether r is replaced by Text.
func Replaced(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\u2028' || r == '\u2029' ||
		unicode.Is(unicode.Bidi_Control, r)
}

// clean reports whether s is valid UTF-8 holding nothing Text replaces
// (but '\n' when lines is set).
func clean(s string, lines bool) bool {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if (b < 0x20 && !(lines && b == '\n')) || b == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || Replaced(r) {
			return false
		}
		i += n
	}
	return true
}

func sanitize(s string, lines bool) string {
	if clean(s, lines) {
		return s // the common case, without a copy
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteRune(utf8.RuneError)
		case r == '\n' && lines:
			b.WriteByte('\n')
		case r < 0x20:
			b.WriteRune(0x2400 + r) // ␀ … ␟
		case r == 0x7f:
			b.WriteRune('\u2421') // ␡
		case Replaced(r):
			b.WriteString("[U+")
			const hex = "0123456789ABCDEF"
			for shift := 12; shift >= 0; shift -= 4 {
				b.WriteByte(hex[(r>>shift)&0xf])
			}
			b.WriteByte(']')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// URL returns raw without the user name and password it may carry
// ("http://user:pass@host/pub" becomes "http://host/pub"); the rest is
// kept as it is. Requests still use the whole URL: this is for showing
// it. A string that does not parse as a URL loses whatever stands
// between "//" and the last "@" before the path all the same. The result
// is not sanitised: pass it to Text where it is shown to people.
func URL(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw // no user info: the common case, without a copy
	}
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		if u.User == nil {
			return raw
		}
		u.User = nil
		return u.String()
	}
	// Unparsable: cut the authority's user info by hand.
	i := strings.Index(raw, "//")
	if i < 0 {
		return raw
	}
	auth := raw[i+2:]
	end := strings.IndexAny(auth, "/?#")
	if end < 0 {
		end = len(auth)
	}
	at := strings.LastIndex(auth[:end], "@")
	if at < 0 {
		return raw
	}
	return raw[:i+2] + auth[at+1:]
}

// EscapeJSON returns the JSON document b with every character Text would
// replace, where it stands raw (bidirectional controls, C1 controls, DEL,
// line separators: encoding/json leaves them as they are), written as a
// \uXXXX escape instead: the values read back are the same, but a
// terminal or a page showing the document is handed none of them. Such
// characters can only stand inside strings in JSON, where an escape
// means the same. b is returned as it is when it holds none.
func EscapeJSON(b []byte) []byte {
	if clean(string(b), true) {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	const hex = "0123456789abcdef"
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			out = append(out, b[i]) // not ours to fix: encoding/json writes valid UTF-8
		case r != '\n' && r != '\r' && r != '\t' && Replaced(r):
			out = append(out, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		default:
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}
