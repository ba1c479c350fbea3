package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/internal/dburl"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// mark flanks every character of a fuzzed password: any piece of the
// password longer than a few characters that shows in a message holds
// part of a mark.
const mark = "Qx9Zk"

// markedPassword interleaves the marks with the characters of s.
func markedPassword(s string) string {
	var b strings.Builder
	b.WriteString(mark)
	for _, r := range s {
		b.WriteRune(r)
		b.WriteString(mark)
	}
	return b.String()
}

// showsPassword reports whether msg holds a piece of a marked password.
func showsPassword(msg string) bool { return strings.Contains(msg, "x9Z") }

const minimalYAML = `master:
  url: https://staging.example.org/pub
releases:
  dir: /pub/{release}/
  products: ["P-{release}"]
checks:
  contact: ops@example.org
`

// FuzzPasswordNeverPrinted gives passwords of every special character to
// Open and to the configuration, as a URL written as it stands, as the
// same URL percent-encoded, and as a key=value string, and wants no piece
// of the password in any error, and an error saying to percent-encode it
// when dburl.Check says it needs that (which strings do is dburl's own
// test).
func FuzzPasswordNeverPrinted(f *testing.F) {
	for _, s := range []string{"@", "/", "#", "?", "%", "%zz", "%41", ":", "[", "]", " ", "'", `"`, `\`, "=",
		"prod#2024", "pa/ss@word", "a@b@c", "x?y=1&z", "é", "\n", "\t", "`", "{}", "<>", "^|", "sentry", "",
		"@127.0.0.1:2/x?", "#@", "%%", "%4", "tab\there"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) || len(s) > 64 {
			t.Skip("NUL cannot be sent; long inputs add nothing")
		}
		pw := markedPassword(s)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		raw := "postgres://sentry:" + pw + "@127.0.0.1:1/bouncer?connect_timeout=2"
		encoded := "postgres://" + url.UserPassword("sentry", pw).String() + "@127.0.0.1:1/bouncer?connect_timeout=2"
		quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)
		kv := "host=127.0.0.1 port=1 user=sentry dbname=bouncer connect_timeout=2 password='" + quoted + "'"
		for _, c := range []struct {
			name, url string
			encode    bool // the error must say to percent-encode
		}{{"raw URL", raw, errors.Is(dburl.Check(raw), dburl.ErrNeedsEncoding)}, {"encoded URL", encoded, false}, {"key=value", kv, false}} {
			st, err := store.Open(ctx, c.url, 2)
			if err == nil {
				st.Close()
				t.Fatalf("%s: Open of port 1 succeeded", c.name)
			}
			if showsPassword(err.Error()) {
				t.Errorf("%s: Open's error shows the password: %v", c.name, err)
			}
			if c.encode != errors.Is(err, dburl.ErrNeedsEncoding) {
				t.Errorf("%s: Open's error %v: says to percent-encode %v, want %v", c.name, err, !c.encode, c.encode)
			}
			for _, from := range []string{"file", "environment"} {
				yaml, env := minimalYAML+"database:\n  url: \"postgres://other@127.0.0.1:1/x\"\n", map[string]string{config.EnvDatabaseURL: c.url}
				if from == "file" {
					yaml, env = minimalYAML+fmt.Sprintf("database:\n  url: %q\n", c.url), nil
				}
				_, err := config.Parse([]byte(yaml), "c.yaml", func(k string) string { return env[k] })
				if err == nil {
					continue
				}
				msg := err.Error()
				if showsPassword(msg) {
					t.Errorf("%s from the %s: the configuration error shows the password: %v", c.name, from, err)
				}
				if from == "environment" && (strings.Contains(msg, "c.yaml") || !strings.Contains(msg, config.EnvDatabaseURL)) {
					t.Errorf("%s from the environment: the error does not name %s alone: %v", c.name, config.EnvDatabaseURL, err)
				}
				if c.encode && !strings.Contains(msg, "percent-encoded") {
					t.Errorf("%s from the %s: the error does not say to percent-encode: %v", c.name, from, err)
				}
			}
		}
	})
}

// TestErrorsKeepWordsThatHoldThePassword: a password such as "sentry" is
// no reason to take the name out of sentry_runs in an error, and the
// error still unwraps to PostgreSQL's own.
func TestErrorsKeepWordsThatHoldThePassword(t *testing.T) {
	u, err := url.Parse(pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "sentry") // the test clusters trust local logins
	st, err := store.Open(context.Background(), u.String(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, qerr := st.Pool().Exec(context.Background(), `SELECT * FROM sentry_nosuch_table`)
	err = st.Wrap("read sentry_nosuch_table", qerr)
	if !strings.Contains(err.Error(), `relation "sentry_nosuch_table" does not exist`) || strings.Contains(err.Error(), "xxxxx") {
		t.Errorf("the error lost its words: %v", err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Errorf("errors.As finds no undefined_table PgError in %v", err)
	}
	// Where it stands as a password, it is taken out.
	echo := st.Wrap("connect", errors.New("server said: postgres://u:sentry@db/x and password=sentry and password='sentry'"))
	if strings.Contains(strings.ReplaceAll(echo.Error(), "sentry said", ""), ":sentry@") || strings.Contains(echo.Error(), "=sentry") ||
		strings.Contains(echo.Error(), "'sentry'") {
		t.Errorf("an echoed connection string keeps the password: %v", echo)
	}
}
