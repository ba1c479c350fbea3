package localmirror

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRsyncd: the daemon serves a mirror's tree as a read-only module,
// files put on the mirror later included, counts the sessions, and Close
// stops it and removes its configuration (twice does nothing).
func TestRsyncd(t *testing.T) {
	t.Parallel()
	rel, s, tree := treeMirror(t, "rsync")
	d, err := StartRsyncd("mozilla", tree)
	if errors.Is(err, ErrNoRsync) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !regexp.MustCompile(`^rsync://127\.0\.0\.1:\d+/mozilla$`).MatchString(d.URL) {
		t.Errorf("URL %q, want rsync://127.0.0.1:PORT/mozilla", d.URL)
	}
	rsync := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "rsync", args...).CombinedOutput()
		return string(out), err
	}
	list := func() string {
		t.Helper()
		out, err := rsync("--list-only", "-r", d.URL+"/firefox/releases/1.5/")
		if err != nil {
			t.Fatalf("rsync --list-only: %v: %s", err, out)
		}
		return out
	}
	out := list()
	for _, p := range rel.Paths() {
		if !strings.Contains(out, p) {
			t.Errorf("%s not listed:\n%s", p, out)
		}
	}
	s.Put(rel, "mac/fr/Firefox 1.5.dmg", []byte("dmg"))
	s.Remove(rel, tarb)
	if out := list(); !strings.Contains(out, "mac/fr/Firefox 1.5.dmg") || strings.Contains(out, tarb) {
		t.Errorf("the listing does not follow the mirror:\n%s", out)
	}
	if out, err := rsync(filepath.Join(tree, rel.Dir, setup), d.URL+"/upload.exe"); err == nil {
		t.Errorf("an upload to the read-only module succeeded: %s", out)
	}
	if _, err := os.Stat(filepath.Join(tree, "upload.exe")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an upload landed in the tree: %v", err)
	}
	if n := d.Connections(); n != 3 {
		t.Errorf("%d sessions counted, want 3 (two listings, the refused upload)", n)
	}

	d.Close()
	d.Close()
	if _, err := os.Stat(d.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the daemon's configuration is still there: %v", err)
	}
	if out, err := rsync("--list-only", d.URL+"/"); err == nil {
		t.Errorf("listed after Close: %s", out)
	}
}
