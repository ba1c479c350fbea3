package release

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/internal/testkit/testgpg"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/manifest"
)

// Peak memory reading an endless manifest.
//
// Each case runs in a child process of the test binary (so that its peak
// RSS, VmHWM, is its own): a master serving a manifest that never ends,
// and sentry reading it the way the release hook does (ReadManifest), with
// the default caps (releases.max_manifest_bytes 64 MiB,
// releases.max_manifest_entries 100000). The read must fail naming the cap
// it hit, and the child's peak RSS must stay under the case's bound (four
// times as much under the race detector, whose shadow memory triples it):
// the figures are in docs/design.md ("Signed manifests").
const memChildEnv = "SENTRY_MANIFEST_MEMORY_CHILD"

// memoryCases are the endless manifests: name, line length, whether the
// manifest is signed (detached, clearsigned), the cap it must hit, and the
// bound on the peak RSS in MiB.
var memoryCases = []struct {
	name      string
	pathLen   int
	signature string // "", "SHA256SUMS.asc", "clearsigned"
	want      error
	boundMiB  int
}{
	// Lines of a usual length: the entry cap stops it, at about 10 MiB read.
	{"endless", 60, "", manifest.ErrTooManyEntries, 96},
	// Lines of 4 KiB paths: the byte cap stops it (16000 entries).
	{"long paths", 4000, "", checks.ErrBodyTooLarge, 112},
	// Signed: after the entry cap, the rest is read for the signature's
	// verdict, to the byte cap, where the parser's error is told.
	{"endless, detached signature", 60, "SHA256SUMS.asc", manifest.ErrTooManyEntries, 96},
	// Clearsigned: the message is read whole before it is verified.
	{"endless, clearsigned", 60, config.SignatureClearsigned, checks.ErrBodyTooLarge, 128},
}

func TestEndlessManifestMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peak RSS is read from /proc/self/status")
	}
	if testing.Short() {
		t.Skip("reads 64 MiB manifests")
	}
	if c := os.Getenv(memChildEnv); c != "" {
		endlessManifestChild(t, c)
		return
	}
	g := testgpg.New(t)
	key := g.Key("Release Team <release@example.org>", "never")
	keyring := writeFile(t, "keys.asc", g.Export(key))
	sig := writeFile(t, "sig.asc", g.Sign(key, []byte("anything\n")))
	for i, c := range memoryCases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestEndlessManifestMemory$", "-test.v")
			cmd.Env = append(os.Environ(), memChildEnv+"="+strconv.Itoa(i), "SENTRY_TEST_KEYRING="+keyring, "SENTRY_TEST_SIG="+sig)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("child: %v\n%s", err, out)
			}
			var peak int
			for _, l := range strings.Split(string(out), "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(l), "peak-rss-kib "); ok {
					peak, _ = strconv.Atoi(v)
				}
			}
			if peak == 0 {
				t.Fatalf("the child told no peak RSS:\n%s", out)
			}
			bound := c.boundMiB * raceFactor
			t.Logf("%s: peak RSS %.1f MiB (bound %d MiB)", c.name, float64(peak)/1024, bound)
			if peak > bound<<10 {
				t.Errorf("%s: peak RSS %.1f MiB, more than %d MiB", c.name, float64(peak)/1024, bound)
			}
		})
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	f := t.TempDir() + "/" + name
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// endlessManifestChild reads case c's endless manifest and prints its
// peak RSS.
func endlessManifestChild(t *testing.T, c string) {
	i, err := strconv.Atoi(c)
	if err != nil || i < 0 || i >= len(memoryCases) {
		t.Fatalf("bad case %q", c)
	}
	mc := memoryCases[i]
	master := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".asc") {
			data, _ := os.ReadFile(os.Getenv("SENTRY_TEST_SIG"))
			w.Write(data)
			return
		}
		endless(w, mc.pathLen, mc.signature == config.SignatureClearsigned)
	}))
	defer master.Close()
	cfg := config.Default()
	cfg.Master.URL = master.URL
	cfg.Releases.Dir = "/releases/{release}/"
	if mc.signature != "" {
		cfg.Releases.Signature = mc.signature
		cfg.Releases.Keyring = os.Getenv("SENTRY_TEST_KEYRING")
	}
	client, err := checks.NewClient(checks.ClientOptions{UserAgent: "sentry-test"})
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{Config: &cfg, Client: client}
	readErr := r.ReadManifest(context.Background(), "1.5")
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fmt.Printf("peak-rss-kib %s\n", strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	if !errors.Is(readErr, ErrManifest) || !errors.Is(readErr, mc.want) {
		t.Fatalf("reading an endless manifest: %v; want ErrManifest and %v", readErr, mc.want)
	}
}

// endless writes manifest lines with distinct paths of about pathLen
// bytes, until the client goes away; clearsigned, after a clearsigned
// message's header.
func endless(w io.Writer, pathLen int, clearsigned bool) {
	bw := bufio.NewWriterSize(w, 64<<10)
	defer bw.Flush()
	if clearsigned {
		bw.WriteString("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n")
	}
	pad := strings.Repeat("x", max(0, pathLen-20))
	for n := 0; ; n++ {
		sum := sha256.Sum256([]byte(strconv.Itoa(n)))
		if _, err := fmt.Fprintf(bw, "%s  dir/%s/%012d.bin\n", hex.EncodeToString(sum[:]), pad, n); err != nil {
			return
		}
	}
}
