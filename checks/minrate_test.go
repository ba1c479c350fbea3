package checks

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBodyMinimumRate: a body must deliver MinRate × BodyIdleTimeout
// bytes (at least MinBodyProgress) in every BodyIdleTimeout window. A
// drip that sends a little now and then (never idle for the whole
// timeout) times out, with the rate in its detail, within the bound
// MaxBodyTime gives; a slow but steady body above the rate does not.
func TestBodyMinimumRate(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		chunk   int           // bytes per write
		every   time.Duration // pause between writes (the pace of the server)
		idle    time.Duration
		minRate int64 // 0: the default
		want    Kind
	}{
		// 16 bytes every 100ms: 320 bytes per 2s, under even the 1 KiB
		// floor.
		{"drip", 32 << 10, 16, 100 * time.Millisecond, 2 * time.Second, 0, KindTimeout},
		// The drip of issue 26: 1,100 bytes every 1.5s with a 3s window
		// is 2,200 bytes a window, over the 1 KiB floor: only the rate
		// stops it (without, this check takes 7 minutes and is ok).
		{"issue 26 drip", 318_000, 1100, 1500 * time.Millisecond, 3 * time.Second, 0, KindTimeout},
		// 2 KiB every 100ms, about 20 KiB/s: steady, but under 64 KiB/s.
		{"steady under the rate", 256 << 10, 2 << 10, 100 * time.Millisecond, 2 * time.Second, 64 << 10, KindTimeout},
		// 8 KiB every 50ms, about 160 KiB/s: far above 8 KiB/s.
		{"slow but steady", 256 << 10, 8 << 10, 50 * time.Millisecond, 2 * time.Second, 8 << 10, KindOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := make([]byte, tt.size)
			for i := range body {
				body[i] = byte(i * 7)
			}
			sum := sha256.Sum256(body)
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				for off := 0; off < len(body); off += tt.chunk {
					if _, err := w.Write(body[off:min(off+tt.chunk, len(body))]); err != nil {
						return
					}
					w.(http.Flusher).Flush()
					select {
					case <-time.After(tt.every):
					case <-r.Context().Done():
						return
					}
				}
			})
			c, _ := newTestClient(t, func(o *ClientOptions) {
				o.BodyIdleTimeout = tt.idle
				o.MinRate = tt.minRate
				o.Retries = NoRetries
			})
			// Bounded: the drips that were not stopped would take
			// minutes.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res := Verify(ctx, c, Target{URL: srv.URL + "/f", Size: int64(len(body)), Algo: "sha256", Hash: hexSum(sum)})
			if res.Kind != tt.want {
				t.Fatalf("kind %s (%s) after %s, want %s", res.Kind, res.Detail, res.Duration, tt.want)
			}
			if tt.want != KindTimeout {
				return
			}
			if !errors.Is(res.Err, ErrBodyIdle) {
				t.Errorf("err %v does not wrap ErrBodyIdle", res.Err)
			}
			if res.Bytes >= int64(len(body)) {
				t.Errorf("the drip was read to its end (%d bytes)", res.Bytes)
			}
			if !strings.Contains(res.Detail, "B/s") {
				t.Errorf("detail %q does not give the rate", res.Detail)
			}
			// FAULTS.md's bound: headers within the header timeout,
			// then the body within MaxBodyTime of its size.
			o := c.Options()
			if bound := o.ConnectTimeout + o.HeaderTimeout + c.MaxBodyTime(int64(len(body))); res.Duration > bound {
				t.Errorf("the check took %s, over its bound of %s", res.Duration, bound)
			}
			t.Logf("%s after %s: %s", res.Kind, res.Duration.Round(time.Millisecond), res.Detail)
		})
	}
}

func TestMaxBodyTime(t *testing.T) {
	c, _ := newTestClient(t, func(o *ClientOptions) { o.BodyIdleTimeout = 30 * time.Second })
	// The defaults: 500 MiB at 32 KiB/s, in windows of 30s.
	if got, want := c.MaxBodyTime(500<<20), 534*30*time.Second; got != want { // 4h27m
		t.Errorf("MaxBodyTime(500 MiB) = %s, want %s", got, want)
	}
	if got := c.MaxBodyTime(0); got != 30*time.Second {
		t.Errorf("MaxBodyTime(0) = %s, want one window", got)
	}
	for _, tt := range []struct {
		rate float64
		want string
	}{{733, "733 B"}, {32 << 10, "32 KiB"}, {1536 << 10, "1.5 MiB"}, {3 << 30, "3 GiB"}} {
		if got := byteCount(tt.rate); got != tt.want {
			t.Errorf("byteCount(%v) = %q, want %q", tt.rate, got, tt.want)
		}
	}
}
