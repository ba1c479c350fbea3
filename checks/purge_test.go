package checks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPurge(t *testing.T) {
	tests := []struct {
		name   string
		status int
		kind   Kind
	}{
		{"purged", http.StatusOK, KindOK},
		{"nothing cached", http.StatusNotFound, KindNotFound},
		{"not allowed to purge", http.StatusMethodNotAllowed, KindHTTPStatus},
		{"forbidden", http.StatusForbidden, KindForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := &postSeen{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen.record(r)
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			res := Purge(context.Background(), postTestClient(t), "PURGE", srv.URL+"/pub/a%20b.exe")
			if res.Kind != tt.kind || res.Status != tt.status {
				t.Errorf("%+v; want %s (HTTP %d)", res, tt.kind, tt.status)
			}
			seen.mu.Lock()
			defer seen.mu.Unlock()
			if len(seen.methods) == 0 || seen.methods[0] != "PURGE" || len(seen.bodies[0]) != 0 ||
				seen.headers[0].Get("User-Agent") != postTestUA {
				t.Errorf("the cache saw %v %v %v; want a PURGE with no body and sentry's User-Agent", seen.methods, seen.bodies, seen.headers)
			}
		})
	}
}

// TestVerifyStale: a body that hashes to the file's previous digest is
// the previous version, and Verify says so; any other wrong body is a
// plain mismatch.
func TestVerifyStale(t *testing.T) {
	now, before, other := []byte("version 2 of the file"), []byte("version 1 of the file"), []byte("something else entire")
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	for _, tt := range []struct {
		name  string
		body  []byte
		kind  Kind
		stale bool
	}{
		{"the new bytes", now, KindOK, false},
		{"the previous version", before, KindChecksumMismatch, true},
		{"other bytes", other, KindChecksumMismatch, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(tt.body) }))
			defer srv.Close()
			c, _ := newTestClient(t, nil)
			res := Verify(context.Background(), c, Target{URL: srv.URL + "/f", Size: int64(len(now)), Algo: "sha256",
				Hash: sum(now), PreviousHash: strings.ToUpper(sum(before))})
			if res.Kind != tt.kind || res.Stale != tt.stale || tt.stale != strings.Contains(res.Detail, "previous version (stale)") {
				t.Errorf("%+v; want %s, stale %v", res, tt.kind, tt.stale)
			}
		})
	}
}
