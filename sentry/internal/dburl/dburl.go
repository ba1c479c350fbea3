// Package dburl checks a PostgreSQL connection string before it is parsed,
// so that no part of a password can end up where an error message shows
// it: a password holding a character that a URL reserves (`@`, `/`, `?`,
// `#`, …) makes the URL mean something else — its tail read as the host,
// the path or a fragment — and a message naming "the host" would then print
// a piece of the password. Such a URL is refused with an error saying what
// to do, and never echoed.
package dburl

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNeedsEncoding: the user name or password of a postgres:// URL holds a
// character that must be percent-encoded.
var ErrNeedsEncoding = errors.New("the user name or password in the database URL holds characters that must be " +
	"percent-encoded (such as @ / ? # [ ] % or a space): write each as %XX (@ as %40, / as %2F, ? as %3F, # as %23, " +
	"% as %25, a space as %20), or use the key=value form (host=… user=… password='…')")

// ErrInvalid: the string is neither a PostgreSQL URL nor a key=value
// string. The text says nothing of the string itself.
var ErrInvalid = errors.New("the database URL is not a valid PostgreSQL URL or key=value string")

// Check reports whether s can be parsed as a connection string without
// any part of its credentials being taken for something else. Its errors
// (ErrNeedsEncoding, ErrInvalid) never hold any part of s.
func Check(s string) error {
	if err := checkUserinfo(s); err != nil {
		return err
	}
	if _, err := pgconn.ParseConfig(s); err != nil {
		return ErrInvalid
	}
	return nil
}

// checkUserinfo finds the userinfo of a postgres:// or postgresql:// URL
// as a reader would — everything between "://" and the last "@" — and
// wants every character of it allowed there unencoded (RFC 3986: unreserved
// characters, sub-delimiters, ':' and %XX escapes).
func checkUserinfo(s string) error {
	rest, ok := strings.CutPrefix(s, "postgres://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "postgresql://"); !ok {
			return nil
		}
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return nil
	}
	userinfo := rest[:at]
	for i := 0; i < len(userinfo); i++ {
		c := userinfo[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:", c) >= 0:
		case c == '%' && i+2 < len(userinfo) && isHex(userinfo[i+1]) && isHex(userinfo[i+2]):
			i += 2
		default:
			return ErrNeedsEncoding
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Password is the password of a connection string ("" when it has none,
// or cannot be parsed): what must never be shown of it.
func Password(s string) string {
	if Check(s) != nil {
		return ""
	}
	c, err := pgconn.ParseConfig(s)
	if err != nil {
		return ""
	}
	return c.Password
}
