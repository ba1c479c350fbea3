package loadfarm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestFarmServesWhatItsManifestSays(t *testing.T) {
	rel := ReleaseSpec{Name: "r", Dir: "/pub/r/", Locations: 2, Langs: 3, Size: 5<<20 + 17}
	f, err := Start(Options{Mirrors: 2, Releases: []ReleaseSpec{rel}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp, err := http.Get(f.Master + rel.Dir + "SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	man, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(man, f.Manifest(rel.Dir)) {
		t.Fatal("master's manifest differs from Manifest")
	}
	sums := map[string]bool{}
	s := bufio.NewScanner(bytes.NewReader(man))
	n := 0
	for s.Scan() {
		hash, path, ok := strings.Cut(s.Text(), "  ")
		if !ok {
			t.Fatalf("bad line %q", s.Text())
		}
		n++
		if sums[hash] {
			t.Errorf("two files with the same content (%s)", path)
		}
		sums[hash] = true
		for _, base := range f.Mirrors {
			resp, err := http.Get(base + rel.Dir + path)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			m, _ := io.Copy(h, resp.Body)
			resp.Body.Close()
			if m != rel.Size || hex.EncodeToString(h.Sum(nil)) != hash {
				t.Errorf("%s%s: %d bytes, hash differs from the manifest", base, path, m)
			}
			req, _ := http.NewRequest(http.MethodHead, base+rel.Dir+path, nil)
			req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("conditional HEAD: %d, want 304", resp.StatusCode)
			}
		}
	}
	if n != rel.Files() {
		t.Errorf("manifest has %d lines, want %d", n, rel.Files())
	}
	if st := f.Stats(); st.Requests != int64(4*n) || st.MaxInFlight < 1 {
		t.Errorf("stats %+v", st)
	}
}
