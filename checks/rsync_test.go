package checks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// TestListRsync lists two release directories of a real rsync daemon, one
// of them missing, in one connection; a daemon that is gone is an error
// wrapping ErrRsync.
func TestListRsync(t *testing.T) {
	dir := t.TempDir()
	put := func(p, body string) {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("firefox/releases/1.5/win32/de/Firefox Setup 1.5.exe", "setup")
	put("firefox/releases/1.5/SHA256SUMS", "sums")
	put("firefox/releases/2.0/a.txt", "aaaaaaaaaa")
	d, err := localmirror.StartRsyncd("mozilla", dir)
	if errors.Is(err, localmirror.ErrNoRsync) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sources := []string{RsyncSource(d.URL, "/firefox/releases/1.5/"), RsyncSource(d.URL, "/firefox/releases/2.0/"),
		RsyncSource(d.URL, "/firefox/releases/9.9/")}
	got, err := ListRsync(context.Background(), RsyncOptions{}, sources)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"firefox/releases/1.5/win32/de/Firefox Setup 1.5.exe": 5,
		"firefox/releases/1.5/SHA256SUMS":                     4,
		"firefox/releases/2.0/a.txt":                          10,
	}
	if len(got) != len(want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	for p, size := range want {
		if l, ok := got[p]; !ok || l.Size != size || l.MTime == "" {
			t.Errorf("%s: %+v (listed %v), want size %d", p, l, ok, size)
		}
	}
	if n := d.Connections(); n != 1 {
		t.Errorf("%d connections to the daemon, want 1", n)
	}
	d.Close()
	if _, err := ListRsync(context.Background(), RsyncOptions{}, sources); !errors.Is(err, ErrRsync) {
		t.Errorf("a daemon gone: %v, want ErrRsync", err)
	}
	if _, err := ListRsync(context.Background(), RsyncOptions{}, []string{"http://x/y"}); !errors.Is(err, ErrRsync) {
		t.Errorf("not an rsync URL: %v", err)
	}
}

func TestUnescapeRsync(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         "plain",
		`a\#012b`:       "a\nb",
		`back\slash`:    `back\slash`,
		`end\#01`:       `end\#01`,
		`two\#040\#041`: "two !",
	} {
		if got := unescapeRsync(in); got != want {
			t.Errorf("unescapeRsync(%q) = %q, want %q", in, got, want)
		}
	}
}
