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

// TestFarmRangesCacheWordsAndEgress: files answer one range and several
// (multipart/byteranges) with the bytes of the whole file; mirrors with
// CacheWords say MISS the first time and HIT after; with an egress cap
// every byte still comes, and is counted, the master's apart.
func TestFarmRangesCacheWordsAndEgress(t *testing.T) {
	rel := ReleaseSpec{Name: "r", Dir: "/pub/r/", Locations: 1, Langs: 1, Size: 6<<20 + 3}
	f, err := Start(Options{Mirrors: 1, Releases: []ReleaseSpec{rel}, Seed: 2, Egress: 64 << 20, CacheWords: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := f.Mirrors[0] + rel.Dir + FilePath(0, 0)
	get := func(rng string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	resp, whole := get("")
	if resp.StatusCode != 200 || int64(len(whole)) != rel.Size || resp.Header.Get("X-Cache-Status") != "MISS" {
		t.Fatalf("whole file: %d, %d bytes, %q", resp.StatusCode, len(whole), resp.Header.Get("X-Cache-Status"))
	}
	resp, one := get("bytes=5000000-5000099")
	if resp.StatusCode != 206 || !bytes.Equal(one, whole[5000000:5000100]) || resp.Header.Get("X-Cache-Status") != "HIT" {
		t.Errorf("one range: %d, %q; bytes differ: %v", resp.StatusCode, resp.Header.Get("X-Cache-Status"), !bytes.Equal(one, whole[5000000:5000100]))
	}
	resp, multi := get("bytes=0-9,4194300-4194309,6291450-6291458")
	if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") ||
		!bytes.Contains(multi, whole[4194300:4194310]) || !bytes.Contains(multi, whole[6291450:]) {
		t.Errorf("several ranges: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	mr, err := http.Get(f.Master + rel.Dir + FilePath(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := io.Copy(io.Discard, mr.Body); m != rel.Size {
		t.Errorf("the master sent %d bytes", m)
	}
	mr.Body.Close()
	s := f.Stats()
	if s.MasterBytes != rel.Size || s.Bytes < 2*rel.Size+100 {
		t.Errorf("stats %+v: want the master's %d bytes and the mirror's apart", s, rel.Size)
	}
}
