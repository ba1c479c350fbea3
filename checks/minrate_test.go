package checks

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestBodyMinimumRate: a body must deliver MinBodyProgress bytes per
// BodyIdleTimeout. A drip that sends a little now and then (never idle for
// the whole timeout) times out; a slow but steady body does not.
func TestBodyMinimumRate(t *testing.T) {
	const idle = 2 * time.Second
	body := make([]byte, 32<<10)
	for i := range body {
		body[i] = byte(i * 7)
	}
	sum := sha256.Sum256(body)
	tests := []struct {
		name  string
		chunk int           // bytes per write
		every time.Duration // pause between writes (the pace of the server)
		want  Kind
	}{
		// 16 bytes every 100ms: 320 bytes per 2s, under the minimum.
		{"drip", 16, 100 * time.Millisecond, KindTimeout},
		// 2 KiB every 50ms: far above it.
		{"slow but steady", 2 << 10, 50 * time.Millisecond, KindOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
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
			c, _ := newTestClient(t, func(o *ClientOptions) { o.BodyIdleTimeout = idle; o.Retries = NoRetries })
			// Bounded: a drip that were not stopped would take 20s.
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			res := Verify(ctx, c, Target{URL: srv.URL + "/f", Size: int64(len(body)), Algo: "sha256", Hash: hexSum(sum)})
			if res.Kind != tt.want {
				t.Fatalf("kind %s (%s), want %s", res.Kind, res.Detail, tt.want)
			}
			if tt.want == KindTimeout && !errors.Is(res.Err, ErrBodyIdle) {
				t.Errorf("err %v does not wrap ErrBodyIdle", res.Err)
			}
			if tt.want == KindTimeout && res.Bytes >= int64(len(body)) {
				t.Errorf("the drip was read to its end (%d bytes)", res.Bytes)
			}
		})
	}
}
