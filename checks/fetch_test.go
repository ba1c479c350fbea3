package checks

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestFetchIfChanged(t *testing.T) {
	doc := strings.Repeat("0123456789abcdef", 64) // 1 KiB
	tests := []struct {
		name    string
		handler http.HandlerFunc
		limit   int64
		kind    Kind
		readErr error // error expected from reading the body (KindOK only)
	}{
		{"whole document", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, doc) }, 4096, KindOK, nil},
		{"exactly the limit", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, doc) }, int64(len(doc)), KindOK, nil},
		{"declared too large", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, doc) }, 100, KindTooLarge, nil},
		{"chunked past the limit", func(w http.ResponseWriter, r *http.Request) {
			for range 8 {
				io.WriteString(w, doc)
				w.(http.Flusher).Flush()
			}
		}, 4096, KindOK, ErrBodyTooLarge},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, 4096, KindNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.handler)
			c, tr := newTestClient(t, nil)
			body, res := FetchIfChanged(context.Background(), c, srv.URL+"/SHA256SUMS", tt.limit, "", "")
			if res.Kind != tt.kind {
				t.Fatalf("kind %s (%s), want %s", res.Kind, res.Detail, tt.kind)
			}
			if res.Kind != KindOK {
				if body != nil {
					t.Fatal("body returned with a failure")
				}
				tr.assertClosed(t)
				return
			}
			got, err := io.ReadAll(body)
			body.Close()
			tr.assertClosed(t)
			if tt.readErr != nil {
				if !errors.Is(err, tt.readErr) || int64(len(got)) > tt.limit {
					t.Fatalf("read %d bytes, err %v; want at most %d and %v", len(got), err, tt.limit, tt.readErr)
				}
				return
			}
			if err != nil || string(got) != doc {
				t.Fatalf("read %d bytes, err %v", len(got), err)
			}
		})
	}
}
