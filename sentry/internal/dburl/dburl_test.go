package dburl_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mirrorsentry/sentry/sentry/internal/dburl"
)

// TestCheck: what is refused, what is accepted, and the password each
// accepted string holds. An error is one of the sentinels itself, never
// wrapped around any part of the string.
func TestCheck(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, s  string
		want     error
		password string // when accepted
	}{
		{"plain URL", "postgres://sentry:secret@db.example.org:5432/bouncer", nil, "secret"},
		{"the postgresql scheme", "postgresql://sentry:secret@db.example.org/bouncer", nil, "secret"},
		{"sub-delimiters and colons stand as they are", "postgres://sentry:a!$&'()*+,;=:b-._~@db/bouncer", nil, "a!$&'()*+,;=:b-._~"},
		{"percent-encoded @ / ? #", "postgres://sentry:p%40s%2Fs%3F%23@db/bouncer", nil, "p@s/s?#"},
		{"an escape at the very end", "postgres://sentry:%41@db/bouncer", nil, "A"},
		{"no user information", "postgres://db.example.org/bouncer", nil, ""},
		{"an IPv6 host after the credentials", "postgres://sentry:secret@[::1]:5432/bouncer", nil, "secret"},
		{"key=value with every reserved character", `host=db user=sentry password='p@ss/w?r#d %zz'`, nil, "p@ss/w?r#d %zz"},
		{"an @ in the password", "postgres://sentry:pa@ss@db/bouncer", dburl.ErrNeedsEncoding, ""},
		{"an @ in the user name", "postgres://sen@try:secret@db/bouncer", dburl.ErrNeedsEncoding, ""},
		{"a / in the password", "postgres://sentry:pa/ss@db/bouncer", dburl.ErrNeedsEncoding, ""},
		{"a ? in the password", "postgresql://sentry:pa?ss@db/bouncer", dburl.ErrNeedsEncoding, ""},
		{"a # in the password", "postgres://sentry:prod#2024@db/bouncer", dburl.ErrNeedsEncoding, ""},
		{"a space in the password", "postgres://sentry:pa ss@db/bouncer", dburl.ErrNeedsEncoding, ""},
		{"brackets in the password", "postgres://sentry:pa[ss]@db/bouncer", dburl.ErrNeedsEncoding, ""},
		{"a letter outside ASCII", "postgres://sentry:passé@db/bouncer", dburl.ErrNeedsEncoding, ""},
		{"a % that starts no escape", "postgres://sentry:100%zz@db/bouncer", dburl.ErrNeedsEncoding, ""},
		{"a % with one hex digit before the @", "postgres://sentry:ab%4@db/bouncer", dburl.ErrNeedsEncoding, ""},
		{"a lone % at the end", "postgres://sentry:ab%@db/bouncer", dburl.ErrNeedsEncoding, ""},
		{"a port that is no number", "postgres://sentry:secret@db:port/bouncer", dburl.ErrInvalid, ""},
		{"key=value with an unknown quote", "host=db password='unterminated", dburl.ErrInvalid, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := dburl.Check(c.s)
			if err != c.want { // the sentinel itself: nothing of s added
				t.Fatalf("Check(%q) = %v, want %v", c.s, err, c.want)
			}
			if got := dburl.Password(c.s); got != c.password {
				t.Errorf("Password(%q) = %q, want %q", c.s, got, c.password)
			}
		})
	}
}

// needsEncoding is the rule of docs: every character but unreserved ones,
// sub-delimiters and ':' must be percent-encoded in a URL's userinfo. (A
// '%' is among them: the fuzzed passwords are marked so that none starts
// an escape.)
func needsEncoding(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:", c) >= 0:
		default:
			return true
		}
	}
	return false
}

// FuzzCheck writes passwords of every character into a URL as they stand,
// into the same URL percent-encoded and into a key=value string. The URL as
// it stands is refused exactly when the password needs percent-encoding,
// and when it is accepted nothing of the password was taken for the host,
// the port or the database; the two other forms are accepted and give the
// password back whole.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"@", "/", "#", "?", "%", "%zz", "%41", ":", "[", "]", " ", "'", `"`, `\`, "=",
		"prod#2024", "pa/ss@word", "a@b@c", "x?y=1&z", "é", "\n", "\t", "`", "{}", "<>", "^|", "sentry", "",
		"@127.0.0.1:2/x?", "#@", "%%", "%4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) || len(s) > 64 {
			t.Skip("NUL cannot be sent; long inputs add nothing")
		}
		// "k" before and after every character: no '%' starts an escape.
		pw := "k" + strings.Join(strings.Split(s, ""), "k") + "k"
		raw := "postgres://sentry:" + pw + "@127.0.0.1:1/bouncer?connect_timeout=2"
		switch err := dburl.Check(raw); {
		case needsEncoding(pw) && err != dburl.ErrNeedsEncoding:
			t.Errorf("%q: Check = %v, want ErrNeedsEncoding", raw, err)
		case !needsEncoding(pw) && err != nil:
			t.Errorf("%q: Check = %v, want nil", raw, err)
		case err == nil:
			c, perr := pgconn.ParseConfig(raw)
			if perr != nil {
				t.Fatalf("%q: accepted, but pgconn: %v", raw, perr)
			}
			if c.User != "sentry" || c.Password != pw || c.Host != "127.0.0.1" || c.Port != 1 || c.Database != "bouncer" {
				t.Errorf("%q: accepted, read as user %q password %q host %q port %d database %q", raw, c.User, c.Password, c.Host, c.Port, c.Database)
			}
		}

		encoded := "postgres://" + url.UserPassword("sentry", pw).String() + "@127.0.0.1:1/bouncer"
		quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)
		kv := "host=127.0.0.1 port=1 user=sentry dbname=bouncer password='" + quoted + "'"
		for _, form := range []string{encoded, kv} {
			if err := dburl.Check(form); err != nil {
				t.Errorf("%q: Check = %v, want nil", form, err)
			}
			if got := dburl.Password(form); got != pw {
				t.Errorf("%q: Password = %q, want %q", form, got, pw)
			}
		}
		if got := dburl.Password(raw); got != "" && got != pw {
			t.Errorf("%q: Password = %q: half-read", raw, got)
		}
	})
}
