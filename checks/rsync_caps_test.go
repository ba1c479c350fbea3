package checks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeRsync writes a shell script that stands for the rsync client and
// prints what script says, whatever it is asked: a hostile daemon's
// listing as the client would print it.
//
// Write the scripts before the test calls t.Parallel: a process another
// parallel test forks at the moment a script is being written inherits
// its open file for an instant, and running the script then fails with
// "text file busy" (ETXTBSY; golang/go#22315). While a test has not yet
// called t.Parallel, no parallel test runs.
func fakeRsync(t *testing.T, script string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "rsync")
	if err := os.WriteFile(f, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestListRsyncCaps: a listing that never ends, a name longer than the
// cap and a line that never ends are errors naming the cap, and the
// client is stopped; only the names wanted are kept.
func TestListRsyncCaps(t *testing.T) {
	const line = `-rw-r--r--          5 2026/01/01 00:00:00 `
	sources := []string{"rsync://127.0.0.1:1/mozilla/./firefox/releases/1.5/"}
	cases := []struct {
		name   string
		script string
		opts   RsyncOptions
		says   string
	}{
		{"endless listing", `yes -- '` + line + `firefox/releases/1.5/x'`, RsyncOptions{MaxEntries: 1000}, "more than 1000 entries"},
		{"long name", `printf -- '` + line + `%s\n' "$(head -c 5000 /dev/zero | tr '\0' a)"`, RsyncOptions{},
			"longer than 4096"},
		{"endless line", `yes a | tr -d '\n'`, RsyncOptions{}, "a line longer than"},
	}
	for i := range cases {
		cases[i].opts.Binary = fakeRsync(t, cases[i].script)
	}
	wantedScript := fakeRsync(t, `printf -- '`+line+`firefox/releases/1.5/a.exe\n`+line+`firefox/releases/1.5/junk\n`+
		`drwxr-xr-x          5 2026/01/01 00:00:00 firefox/releases/1.5/dir\n'`)
	t.Parallel()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := ListRsync(ctx, tt.opts, sources)
			if !errors.Is(err, ErrRsync) || !strings.Contains(err.Error(), tt.says) || ctx.Err() != nil {
				t.Errorf("%v; want ErrRsync saying %q, before the deadline", err, tt.says)
			}
		})
	}

	t.Run("wanted names", func(t *testing.T) {
		t.Parallel()
		want := "firefox/releases/1.5/a.exe"
		got, err := ListRsync(context.Background(), RsyncOptions{Binary: wantedScript,
			Want: func(name string) bool { return name == want }}, sources)
		if err != nil || len(got) != 1 || got[want].Size != 5 {
			t.Errorf("listing %v (%v); want %s alone", got, err, want)
		}
	})
}
