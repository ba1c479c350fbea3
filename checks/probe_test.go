package checks

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	testContent = func() []byte {
		// Compressible on purpose (the gzip case needs a shorter encoding).
		b := make([]byte, 1024)
		for i := range b {
			b[i] = "sentry verifies bytes. "[i%23]
		}
		return b
	}()
	testSHA256 = hexSum(sha256.Sum256(testContent))
	testSHA512 = func() string { s := sha512.Sum512(testContent); return hex.EncodeToString(s[:]) }()
	testSize   = int64(len(testContent))
)

func hexSum(s [32]byte) string { return hex.EncodeToString(s[:]) }

// serve starts an httptest server for one case; it is closed when the test
// ends, after the channel returned by stopCh (if used) is closed.
func serve(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func serveTLS(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors are the point of some cases
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// serveH2 is serveTLS with HTTP/2 enabled; the handler fails the request
// (500) if it was not HTTP/2.
func serveH2(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "not HTTP/2", http.StatusHTTPVersionNotSupported)
			return
		}
		h(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// stopCh returns a channel closed when the test ends, before the servers
// close: handlers that must block "until the test ends" wait on it.
func stopCh(t testing.TB) <-chan struct{} {
	ch := make(chan struct{})
	t.Cleanup(func() { close(ch) })
	return ch
}

// fileHandler serves content with Content-Length, ranges and conditional
// requests (ETag when etag != "").
func fileHandler(content []byte, etag string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if etag != "" {
			w.Header().Set("ETag", etag)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "file", time.Unix(1136214245, 0), bytes.NewReader(content))
	}
}

// headNoLength answers HEAD with 200 and no Content-Length and GET with get.
func headNoLength(get http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return
		}
		get(w, r)
	}
}

// chunked writes body without a Content-Length.
func chunked(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // headers out before any byte: no Content-Length
		w.Write(body)
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, http.StatusText(code), code) }
}

// counted counts the requests reaching h.
func counted(n *atomic.Int32, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { n.Add(1); h(w, r) }
}

func target(u string) Target {
	return Target{URL: u + "/pub/file%20one.bin", Size: testSize, Algo: "sha256", Hash: testSHA256}
}

func rootPool(srv *httptest.Server) func(*ClientOptions) {
	return func(o *ClientOptions) {
		o.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	}
}

func reachable(ctx context.Context, c *Client, t Target) Result { return Reachable(ctx, c, t.URL) }

type probeCase struct {
	name  string
	probe Prober
	// setup starts the servers and returns the target and an options tweak.
	setup func(t *testing.T) (Target, func(*ClientOptions))
	// want: Kind, Status, Bytes and Hashed are always compared; Attempts
	// when non-zero.
	want   Result
	detail string // substring the Detail must contain
	check  func(t *testing.T, res Result)
}

func runCases(t *testing.T, cases []probeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tgt, mod := tc.setup(t)
			c, tr := newTestClient(t, mod)
			res := tc.probe(t.Context(), c, tgt)
			t.Logf("kind=%s status=%d bytes=%d attempts=%d detail=%q final=%q err=%v",
				res.Kind, res.Status, res.Bytes, res.Attempts, res.Detail, res.FinalURL, res.Err)
			w := tc.want
			if res.Kind != w.Kind || res.Status != w.Status || res.Bytes != w.Bytes || res.Hashed != w.Hashed {
				t.Errorf("got kind=%s status=%d bytes=%d hashed=%v (detail %q, err %v)\nwant kind=%s status=%d bytes=%d hashed=%v",
					res.Kind, res.Status, res.Bytes, res.Hashed, res.Detail, res.Err,
					w.Kind, w.Status, w.Bytes, w.Hashed)
			}
			if w.Attempts != 0 && res.Attempts != w.Attempts {
				t.Errorf("attempts = %d, want %d", res.Attempts, w.Attempts)
			}
			if res.Kind.Failed() && (res.Detail == "" || res.Err == nil) {
				t.Errorf("failure without detail or error: %+v", res)
			}
			if !res.Kind.Failed() && res.Err != nil {
				t.Errorf("success with an error: %v", res.Err)
			}
			if !strings.Contains(res.Detail, tc.detail) {
				t.Errorf("detail %q does not contain %q", res.Detail, tc.detail)
			}
			if res.Duration <= 0 {
				t.Errorf("duration %s", res.Duration)
			}
			tr.assertClosed(t)
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}

// simple builds a setup from one handler.
func simple(h http.HandlerFunc) func(t *testing.T) (Target, func(*ClientOptions)) {
	return func(t *testing.T) (Target, func(*ClientOptions)) {
		return target(serve(t, h).URL), nil
	}
}

func TestVerify(t *testing.T) {
	var (
		n503, n5032, n429, nRefused atomic.Int32
	)
	runCases(t, []probeCase{
		{
			name: "good sha256", probe: Verify, setup: simple(fileHandler(testContent, `"v1"`)),
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: true, Attempts: 1},
			check: func(t *testing.T, res Result) {
				if res.ETag != `"v1"` || res.LastModified == "" || !strings.HasPrefix(res.FinalURL, "http://127.0.0.1:") {
					t.Errorf("validators/final URL not recorded: %+v", res)
				}
			},
		},
		{
			name: "good sha512", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				tg := target(serve(t, fileHandler(testContent, "")).URL)
				tg.Algo, tg.Hash = "sha512", strings.ToUpper(testSHA512)
				return tg, nil
			},
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: true, Attempts: 1},
		},
		{
			name: "size only", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				tg := target(serve(t, fileHandler(testContent, "")).URL)
				tg.Algo, tg.Hash = "", ""
				return tg, nil
			},
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: false},
		},
		{
			name: "empty file", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				tg := target(serve(t, fileHandler(nil, "")).URL)
				tg.Size, tg.Hash = 0, hexSum(sha256.Sum256(nil))
				return tg, nil
			},
			want: Result{Kind: KindOK, Status: 200, Bytes: 0, Hashed: true},
		},
		{name: "404", probe: Verify, setup: simple(status(404)), want: Result{Kind: KindNotFound, Status: 404, Attempts: 1}, detail: "404"},
		{name: "410", probe: Verify, setup: simple(status(410)), want: Result{Kind: KindNotFound, Status: 410, Attempts: 1}, detail: "410"},
		{name: "403", probe: Verify, setup: simple(status(403)), want: Result{Kind: KindForbidden, Status: 403, Attempts: 1}, detail: "403"},
		{name: "401", probe: Verify, setup: simple(status(401)), want: Result{Kind: KindForbidden, Status: 401, Attempts: 1}},
		{name: "400", probe: Verify, setup: simple(status(400)), want: Result{Kind: KindHTTPStatus, Status: 400, Attempts: 1}, detail: "HTTP 400"},
		{name: "206 unasked", probe: Verify, setup: simple(status(206)), want: Result{Kind: KindHTTPStatus, Status: 206}, detail: "206"},
		{
			name: "304 unasked", probe: Verify, setup: simple(status(304)),
			want: Result{Kind: KindHTTPStatus, Status: 304}, detail: "304",
		},
		{
			name: "503 retried then failing", probe: Verify, setup: simple(counted(&n503, status(503))),
			want: Result{Kind: KindHTTPStatus, Status: 503, Attempts: 3}, detail: "503",
			check: func(t *testing.T, res Result) {
				if n := n503.Load(); n != 3 {
					t.Errorf("server saw %d requests, want Retries+1 = 3", n)
				}
			},
		},
		{
			name: "retries 5 then failing", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				return target(serve(t, counted(&n5032, status(502))).URL), func(o *ClientOptions) { o.Retries = 5 }
			},
			want: Result{Kind: KindHTTPStatus, Status: 502, Attempts: 6},
			check: func(t *testing.T, res Result) {
				if n := n5032.Load(); n != 6 {
					t.Errorf("server saw %d requests, want 6", n)
				}
			},
		},
		{
			name: "503 then 200", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				var n atomic.Int32
				ok := fileHandler(testContent, "")
				return target(serve(t, func(w http.ResponseWriter, r *http.Request) {
					if n.Add(1) == 1 {
						http.Error(w, "busy", 503)
						return
					}
					ok(w, r)
				}).URL), nil
			},
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: true, Attempts: 2},
		},
		{
			name: "429 with Retry-After 3600 is capped", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				ok := fileHandler(testContent, "")
				return target(serve(t, counted(&n429, func(w http.ResponseWriter, r *http.Request) {
					if n429.Load() == 1 {
						w.Header().Set("Retry-After", "3600")
						http.Error(w, "slow down", 429)
						return
					}
					ok(w, r)
				})).URL), nil
			},
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: true, Attempts: 2},
		},
		{
			name: "429 always", probe: Verify,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "3600")
				http.Error(w, "slow down", 429)
			}),
			want: Result{Kind: KindHTTPStatus, Status: 429, Attempts: 3}, detail: "429",
		},
		{
			name: "truncated body with correct Content-Length", probe: Verify,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				conn, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					panic(err)
				}
				defer conn.Close()
				fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", testSize)
				buf.Write(testContent[:512])
				buf.Flush()
			}),
			want:   Result{Kind: KindTruncated, Status: 200, Bytes: 512, Attempts: 1},
			detail: "512 of 1024",
		},
		{
			name: "chunked body cut short", probe: Verify,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				conn, buf, _ := w.(http.Hijacker).Hijack()
				defer conn.Close()
				fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n%s\r\n", testContent[:512])
				buf.Flush()
			}),
			want: Result{Kind: KindTruncated, Status: 200, Bytes: 512},
		},
		{
			name: "wrong Content-Length", probe: Verify,
			setup:  simple(fileHandler(testContent[:1000], "")),
			want:   Result{Kind: KindSizeMismatch, Status: 200, Bytes: 0, Attempts: 1},
			detail: "Content-Length 1000, want 1024",
		},
		{
			name: "no Content-Length, short body", probe: Verify,
			setup:  simple(chunked(testContent[:1000])),
			want:   Result{Kind: KindSizeMismatch, Status: 200, Bytes: 1000},
			detail: "1000 bytes, want 1024",
		},
		{
			name: "no Content-Length, right body", probe: Verify,
			setup: simple(chunked(testContent)),
			want:  Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: true},
		},
		{
			name: "one flipped byte", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				bad := bytes.Clone(testContent)
				bad[700] ^= 0x01
				return target(serve(t, fileHandler(bad, "")).URL), nil
			},
			want:   Result{Kind: KindChecksumMismatch, Status: 200, Bytes: testSize, Hashed: true},
			detail: "want " + testSHA256[:12],
		},
		{
			name: "endless body", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				stop := stopCh(t)
				return target(serve(t, func(w http.ResponseWriter, r *http.Request) {
					chunk := bytes.Repeat([]byte("x"), 4096)
					for {
						if _, err := w.Write(chunk); err != nil {
							return
						}
						w.(http.Flusher).Flush()
						select {
						case <-r.Context().Done():
							return
						case <-stop:
							return
						default:
						}
					}
				}).URL), nil
			},
			want:   Result{Kind: KindTooLarge, Status: 200, Bytes: testSize + 1},
			detail: "exceeds",
		},
		{
			name: "stalled body", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				stop := stopCh(t)
				return target(serve(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", strconv.FormatInt(testSize, 10))
					w.Write(testContent[:512])
					w.(http.Flusher).Flush()
					select {
					case <-r.Context().Done():
					case <-stop:
					}
				}).URL), func(o *ClientOptions) { o.BodyIdleTimeout = 50 * time.Millisecond }
			},
			want:   Result{Kind: KindTimeout, Status: 200, Bytes: 512, Attempts: 1},
			detail: "512 bytes in 50ms",
			check: func(t *testing.T, res Result) {
				if !errors.Is(res.Err, ErrBodyIdle) {
					t.Errorf("err %v does not wrap ErrBodyIdle", res.Err)
				}
			},
		},
		{
			name: "header timeout", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				stop := stopCh(t)
				return target(serve(t, func(w http.ResponseWriter, r *http.Request) {
						select {
						case <-r.Context().Done():
						case <-stop:
						}
					}).URL), func(o *ClientOptions) {
						o.HeaderTimeout = 50 * time.Millisecond
						o.Retries = NoRetries
					}
			},
			want: Result{Kind: KindTimeout, Attempts: 1}, detail: "timeout",
		},
		{
			name: "redirect loop", probe: Verify,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/a") {
					http.Redirect(w, r, "b", http.StatusFound)
					return
				}
				http.Redirect(w, r, "a", http.StatusFound)
			}),
			want: Result{Kind: KindRedirect, Status: 302, Attempts: 1}, detail: "redirect",
		},
		{
			name: "4 redirects", probe: Verify, setup: redirectChain(4),
			want: Result{Kind: KindRedirect, Status: 302, Attempts: 1}, detail: "more than 3 redirects",
		},
		{
			name: "3 redirects", probe: Verify, setup: redirectChain(3),
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: true, Attempts: 1},
			check: func(t *testing.T, res Result) {
				if !strings.HasSuffix(res.FinalURL, "/r0") {
					t.Errorf("final URL %q", res.FinalURL)
				}
			},
		},
		{
			name: "redirects disabled", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				tg, _ := redirectChain(1)(t)
				return tg, func(o *ClientOptions) { o.MaxRedirects = NoRedirects }
			},
			want: Result{Kind: KindRedirect, Status: 302}, detail: "redirect",
		},
		{
			name: "https to http downgrade", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				plain := serve(t, fileHandler(testContent, ""))
				secure := serveTLS(t, func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusMovedPermanently)
				})
				return target(secure.URL), rootPool(secure)
			},
			want: Result{Kind: KindRedirect, Status: 301, Attempts: 1}, detail: "downgrade",
		},
		{
			name: "redirect to unsupported scheme", probe: Verify,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "ftp://mirror.example/file", http.StatusFound)
			}),
			want: Result{Kind: KindRedirect, Status: 302}, detail: "scheme",
		},
		{
			name: "redirect to another host", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				other := serve(t, fileHandler(testContent, ""))
				first := serve(t, func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, other.URL+"/elsewhere?token=secret", http.StatusFound)
				})
				tg := target(first.URL)
				tg.URL = first.URL + "/elsewhere"
				return tg, nil
			},
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: true},
			check: func(t *testing.T, res Result) {
				if !strings.HasSuffix(res.FinalURL, "/elsewhere") || strings.Contains(res.FinalURL, "secret") ||
					!strings.HasPrefix(res.FinalURL, "http://127.0.0.1:") {
					t.Errorf("final URL %q, want the other host's URL without query", res.FinalURL)
				}
			},
		},
		{
			name: "https trusted", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				srv := serveTLS(t, fileHandler(testContent, ""))
				return target(srv.URL), rootPool(srv)
			},
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: true},
		},
		{
			name: "http2", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				srv := serveH2(t, fileHandler(testContent, ""))
				return target(srv.URL), rootPool(srv)
			},
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: true},
		},
		{
			name: "http2 stalled body", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				stop := stopCh(t)
				srv := serveH2(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", strconv.FormatInt(testSize, 10))
					w.Write(testContent[:512])
					w.(http.Flusher).Flush()
					select {
					case <-r.Context().Done():
					case <-stop:
					}
				})
				return target(srv.URL), func(o *ClientOptions) {
					rootPool(srv)(o)
					o.BodyIdleTimeout = 50 * time.Millisecond
				}
			},
			want: Result{Kind: KindTimeout, Status: 200, Bytes: 512}, detail: "512 bytes in 50ms",
		},
		{
			name: "http2 endless body", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				stop := stopCh(t)
				srv := serveH2(t, func(w http.ResponseWriter, r *http.Request) {
					for {
						if _, err := w.Write(testContent); err != nil {
							return
						}
						select {
						case <-r.Context().Done():
							return
						case <-stop:
							return
						default:
						}
					}
				})
				return target(srv.URL), rootPool(srv)
			},
			want: Result{Kind: KindTooLarge, Status: 200, Bytes: testSize + 1},
		},
		{
			name: "http2 truncated", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				srv := serveH2(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", strconv.FormatInt(testSize, 10))
					w.Write(testContent[:512])
					w.(http.Flusher).Flush()
					panic(http.ErrAbortHandler) // resets the stream
				})
				return target(srv.URL), rootPool(srv)
			},
			want: Result{Kind: KindTruncated, Status: 200, Bytes: 512},
		},
		{
			name: "http2 huge headers", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				srv := serveH2(t, func(w http.ResponseWriter, r *http.Request) {
					for i := range 20 {
						w.Header().Set(fmt.Sprintf("X-Padding-%d", i), strings.Repeat("p", 5000))
					}
					fileHandler(testContent, "")(w, r)
				})
				return target(srv.URL), rootPool(srv)
			},
			// Known limitation: Go's HTTP/2 client usually reports
			// an oversized header list as a bare PROTOCOL_ERROR
			// connection error, indistinguishable from other
			// protocol errors, so it is a (transient) connect
			// failure rather than too_large. It must fail, though.
			want: Result{Kind: KindConnect}, detail: "PROTOCOL_ERROR",
		},
		{
			name: "untrusted certificate", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				return target(serveTLS(t, fileHandler(testContent, "")).URL), nil
			},
			want: Result{Kind: KindTLS, Attempts: 1}, detail: "TLS",
		},
		{
			name: "plain HTTP on an https URL", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				srv := serve(t, fileHandler(testContent, ""))
				return target(strings.Replace(srv.URL, "http://", "https://", 1)), nil
			},
			want: Result{Kind: KindTLS, Attempts: 1},
		},
		{
			name: "closed port", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := l.Addr().String()
				l.Close()
				return target("http://" + addr), nil
			},
			want: Result{Kind: KindConnect, Attempts: 3}, detail: "refused",
		},
		{
			name: "connection dropped before any answer", probe: Verify,
			setup: simple(counted(&nRefused, func(w http.ResponseWriter, r *http.Request) {
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
			})),
			want: Result{Kind: KindConnect, Attempts: 3},
			check: func(t *testing.T, res Result) {
				// The transport itself may retry an idempotent request
				// once on a dropped connection: at least one request
				// per attempt reached the server.
				if n := nRefused.Load(); n < 3 {
					t.Errorf("server saw %d requests, want at least 3", n)
				}
			},
		},
		{
			name: "unresolvable name", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				return target("http://nonexistent.invalid"), nil
			},
			want: Result{Kind: KindDNS}, detail: "nonexistent.invalid",
		},
		{
			name: "gzip despite identity", probe: Verify,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				var b bytes.Buffer
				zw := gzip.NewWriter(&b)
				zw.Write(testContent)
				zw.Close()
				w.Header().Set("Content-Encoding", "gzip")
				w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
				w.Write(b.Bytes())
			}),
			want: Result{Kind: KindSizeMismatch, Status: 200}, detail: "Content-Encoding gzip",
		},
		{
			name: "gzip despite identity, chunked", probe: Verify,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Encoding", "gzip")
				w.WriteHeader(200)
				w.(http.Flusher).Flush()
				zw := gzip.NewWriter(w)
				zw.Write(testContent)
				zw.Close()
			}),
			want: Result{Kind: KindSizeMismatch, Status: 200, Bytes: gzipLen(testContent)}, detail: "Content-Encoding gzip",
		},
		{
			name: "huge headers", probe: Verify,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				for i := range 20 {
					w.Header().Set(fmt.Sprintf("X-Padding-%d", i), strings.Repeat("p", 5000))
				}
				fileHandler(testContent, "")(w, r)
			}),
			want: Result{Kind: KindTooLarge, Attempts: 1}, detail: "headers",
		},
		{
			name: "conditional GET answered 304", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				tg := target(serve(t, fileHandler(testContent, `"v1"`)).URL)
				tg.ETag = `"v1"`
				return tg, nil
			},
			want: Result{Kind: KindUnchanged, Status: 304, Attempts: 1},
		},
		{
			name: "conditional GET, file changed", probe: Verify,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				tg := target(serve(t, fileHandler(testContent, `"v2"`)).URL)
				tg.ETag = `"v1"`
				return tg, nil
			},
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: true},
		},
		{
			name: "cache headers summarised", probe: Verify,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Cache-Status", "HIT")
				w.Header().Set("Age", "12")
				fileHandler(testContent, "")(w, r)
			}),
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Hashed: true},
			check: func(t *testing.T, res Result) {
				if res.CacheStatus != "X-Cache-Status: HIT; Age: 12" {
					t.Errorf("cache status %q", res.CacheStatus)
				}
			},
		},
	})
}

func gzipLen(b []byte) int64 {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return int64(buf.Len())
}

// redirectChain serves /rN → /rN-1 → ... → /r0 (the file): n redirects.
func redirectChain(n int) func(t *testing.T) (Target, func(*ClientOptions)) {
	return func(t *testing.T) (Target, func(*ClientOptions)) {
		file := fileHandler(testContent, "")
		srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
			i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r"))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			if i == 0 {
				file(w, r)
				return
			}
			http.Redirect(w, r, "/r"+strconv.Itoa(i-1), http.StatusFound)
		})
		tg := target(srv.URL)
		tg.URL = srv.URL + "/r" + strconv.Itoa(n)
		return tg, nil
	}
}

func TestHead(t *testing.T) {
	var nHead atomic.Int32
	runCases(t, []probeCase{
		{
			name: "size match", probe: Head, setup: simple(counted(&nHead, fileHandler(testContent, `"e"`))),
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Attempts: 1},
			check: func(t *testing.T, res Result) {
				if res.ETag != `"e"` || nHead.Load() != 1 {
					t.Errorf("etag %q, %d requests", res.ETag, nHead.Load())
				}
			},
		},
		{
			name: "size mismatch", probe: Head, setup: simple(fileHandler(testContent[:1000], "")),
			want: Result{Kind: KindSizeMismatch, Status: 200, Bytes: 1000}, detail: "Content-Length 1000, want 1024",
		},
		{
			name: "size unknown to sentry", probe: Head,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				tg := target(serve(t, fileHandler(testContent, "")).URL)
				tg.Size = -1
				return tg, nil
			},
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize},
		},
		{
			name: "no Content-Length, range fallback", probe: Head,
			setup: simple(headNoLength(fileHandler(testContent, ""))),
			want:  Result{Kind: KindOK, Status: 206, Bytes: testSize, Attempts: 2},
		},
		{
			name: "no Content-Length, range fallback, wrong size", probe: Head,
			setup: simple(headNoLength(fileHandler(testContent[:1000], ""))),
			want:  Result{Kind: KindSizeMismatch, Status: 206, Bytes: 1000, Attempts: 2}, detail: "Content-Range size 1000, want 1024",
		},
		{
			name: "no Content-Length, range ignored", probe: Head,
			setup: simple(headNoLength(chunked(testContent))),
			want:  Result{Kind: KindOK, Status: 200, Bytes: -1, Attempts: 2}, detail: "size not reported",
		},
		{
			name: "no Content-Length, range ignored with Content-Length", probe: Head,
			setup: simple(headNoLength(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.FormatInt(testSize, 10))
				w.Write(testContent)
			})),
			want: Result{Kind: KindOK, Status: 200, Bytes: testSize, Attempts: 2},
		},
		{
			name: "no Content-Length, empty file answered 416", probe: Head,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				tg := target(serve(t, headNoLength(fileHandler(nil, ""))).URL)
				tg.Size = 0
				return tg, nil
			},
			want: Result{Kind: KindOK, Status: 200, Bytes: 0, Attempts: 2},
		},
		{
			name: "no Content-Length, 416 with the total", probe: Head,
			setup: simple(headNoLength(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes */0")
				w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			})),
			want: Result{Kind: KindSizeMismatch, Status: 416, Bytes: 0, Attempts: 2}, detail: "Content-Range size 0, want 1024",
		},
		{
			name: "no Content-Length, 416 without the total", probe: Head,
			setup: simple(headNoLength(status(416))),
			want:  Result{Kind: KindHTTPStatus, Status: 416, Bytes: -1, Attempts: 2}, detail: "416",
		},
		{
			name: "HEAD not allowed, range fallback", probe: Head,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodHead {
					http.Error(w, "no", http.StatusMethodNotAllowed)
					return
				}
				fileHandler(testContent, "")(w, r)
			}),
			want: Result{Kind: KindOK, Status: 206, Bytes: testSize, Attempts: 2},
		},
		{
			name: "conditional HEAD answered 304", probe: Head,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				tg := target(serve(t, fileHandler(testContent, `"v1"`)).URL)
				tg.ETag = `"v1"`
				return tg, nil
			},
			want: Result{Kind: KindUnchanged, Status: 304, Bytes: -1, Attempts: 1},
		},
		{
			name: "conditional HEAD by date answered 304", probe: Head,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				tg := target(serve(t, fileHandler(testContent, "")).URL)
				tg.LastModified = time.Unix(1136214245, 0).UTC().Format(http.TimeFormat)
				return tg, nil
			},
			want: Result{Kind: KindUnchanged, Status: 304, Bytes: -1},
		},
		{name: "404", probe: Head, setup: simple(status(404)), want: Result{Kind: KindNotFound, Status: 404, Bytes: -1}, detail: "404"},
		{name: "403", probe: Head, setup: simple(status(403)), want: Result{Kind: KindForbidden, Status: 403, Bytes: -1}},
		{name: "503", probe: Head, setup: simple(status(503)), want: Result{Kind: KindHTTPStatus, Status: 503, Bytes: -1, Attempts: 3}},
		{
			name: "gzip Content-Length", probe: Head,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Encoding", "gzip")
				w.Header().Set("Content-Length", "300")
			}),
			want: Result{Kind: KindSizeMismatch, Status: 200, Bytes: 300}, detail: "gzip",
		},
		{
			name: "closed port", probe: Head,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := l.Addr().String()
				l.Close()
				return target("http://" + addr), func(o *ClientOptions) { o.Retries = NoRetries }
			},
			want: Result{Kind: KindConnect, Bytes: -1, Attempts: 1},
		},
	})
}

func TestReachable(t *testing.T) {
	runCases(t, []probeCase{
		{name: "200", probe: reachable, setup: simple(fileHandler(testContent, "")), want: Result{Kind: KindOK, Status: 200, Bytes: testSize}},
		{name: "404 is reachable", probe: reachable, setup: simple(status(404)), want: Result{Kind: KindOK, Status: 404, Bytes: 10, Attempts: 1}},
		{name: "403 is reachable", probe: reachable, setup: simple(status(403)), want: Result{Kind: KindOK, Status: 403, Bytes: 10}},
		{
			name: "no Content-Length", probe: reachable, setup: simple(headNoLength(status(200))),
			want: Result{Kind: KindOK, Status: 200, Bytes: -1},
		},
		{name: "503", probe: reachable, setup: simple(status(503)), want: Result{Kind: KindHTTPStatus, Status: 503, Bytes: 20, Attempts: 3}},
		{
			name: "HEAD 501, GET works", probe: reachable,
			setup: simple(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodHead {
					w.WriteHeader(http.StatusNotImplemented)
					return
				}
				w.Write(bytes.Repeat([]byte("i"), 10000)) // only 4 KiB are read
			}),
			want: Result{Kind: KindOK, Status: 200, Bytes: 4096, Attempts: 2},
		},
		{
			name: "dns", probe: reachable,
			setup: func(t *testing.T) (Target, func(*ClientOptions)) {
				return Target{URL: "https://nonexistent.invalid"}, nil
			},
			want: Result{Kind: KindDNS, Bytes: -1},
		},
	})
}

func TestInvalidTargets(t *testing.T) {
	good := target("http://127.0.0.1:1")
	tests := []struct {
		name  string
		probe Prober
		mod   func(*Target)
	}{
		{"relative URL", Verify, func(tg *Target) { tg.URL = "/pub/file" }},
		{"ftp URL", Head, func(tg *Target) { tg.URL = "ftp://mirror.example/file" }},
		{"unparsable URL", Verify, func(tg *Target) { tg.URL = "http://[::1" }},
		{"size below -1", Head, func(tg *Target) { tg.Size = -2 }},
		{"verify without size", Verify, func(tg *Target) { tg.Size = -1 }},
		{"unknown algo", Verify, func(tg *Target) { tg.Algo = "md5" }},
		{"short hash", Verify, func(tg *Target) { tg.Hash = tg.Hash[:10] }},
		{"non-hex hash", Verify, func(tg *Target) { tg.Hash = strings.Repeat("zz", 32) }},
		{"hash without algo", Verify, func(tg *Target) { tg.Algo = "" }},
		{"etag with newline", Head, func(tg *Target) { tg.ETag = "\"a\"\r\nX-Evil: 1" }},
	}
	c, tr := newTestClient(t, nil)
	for _, tt := range tests {
		tg := good
		tt.mod(&tg)
		res := tt.probe(t.Context(), c, tg)
		if res.Kind != KindInternal || !errors.Is(res.Err, ErrInvalidTarget) || res.Attempts != 0 || res.Detail == "" {
			t.Errorf("%s: got %s attempts=%d err=%v detail=%q", tt.name, res.Kind, res.Attempts, res.Err, res.Detail)
		}
	}
	if res := Verify(t.Context(), nil, good); res.Kind != KindInternal {
		t.Errorf("nil client: %s", res.Kind)
	}
	if res := Reachable(t.Context(), c, "mirror.example"); res.Kind != KindInternal || !errors.Is(res.Err, ErrInvalidTarget) {
		t.Errorf("Reachable without scheme: %s %v", res.Kind, res.Err)
	}
	tr.assertClosed(t)
}

// Every request carries the User-Agent and Accept-Encoding: identity,
// including retries, redirect hops and the range fallback.
func TestRequestHeaders(t *testing.T) {
	var mu sync.Mutex
	type seen struct{ method, path, ua, ae, rng, inm string }
	var reqs []seen
	var fails atomic.Int32
	file := fileHandler(testContent, "")
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, seen{r.Method, r.URL.Path, r.Header.Get("User-Agent"), r.Header.Get("Accept-Encoding"),
			r.Header.Get("Range"), r.Header.Get("If-None-Match")})
		mu.Unlock()
		switch {
		case r.URL.Path == "/redirect":
			http.Redirect(w, r, "/file", http.StatusFound)
		case r.URL.Path == "/flaky" && fails.Add(1) == 1:
			http.Error(w, "busy", 503)
		case r.Method == http.MethodHead && r.URL.Path == "/nolength":
			w.WriteHeader(200)
		default:
			file(w, r)
		}
	})
	c, tr := newTestClient(t, nil)
	tg := target(srv.URL)
	for _, p := range []struct {
		probe Prober
		path  string
		etag  string
	}{{Verify, "/redirect", ""}, {Verify, "/flaky", `"x"`}, {Head, "/nolength", ""}, {reachable, "/", ""}} {
		tg.URL, tg.ETag = srv.URL+p.path, p.etag
		if res := p.probe(t.Context(), c, tg); res.Kind != KindOK {
			t.Fatalf("%s: %s (%s)", p.path, res.Kind, res.Detail)
		}
	}
	tr.assertClosed(t)
	mu.Lock()
	defer mu.Unlock()
	want := []seen{
		{"GET", "/redirect", testUA, "identity", "", ""},
		{"GET", "/file", testUA, "identity", "", ""},
		{"GET", "/flaky", testUA, "identity", "", `"x"`},
		{"GET", "/flaky", testUA, "identity", "", `"x"`},
		{"HEAD", "/nolength", testUA, "identity", "", ""},
		{"GET", "/nolength", testUA, "identity", "bytes=0-0", ""},
		{"HEAD", "/", testUA, "identity", "", ""},
	}
	if fmt.Sprint(reqs) != fmt.Sprint(want) {
		t.Errorf("requests seen:\n got %v\nwant %v", reqs, want)
	}
}

func TestParentContext(t *testing.T) {
	tests := []struct {
		name  string
		probe Prober
		// run returns the context to probe with; the handler may cancel it.
		setup   func(t *testing.T) (context.Context, Target, func(*ClientOptions))
		wantErr error
	}{
		{
			name: "cancelled before", probe: Verify, wantErr: context.Canceled,
			setup: func(t *testing.T) (context.Context, Target, func(*ClientOptions)) {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				var n atomic.Int32
				srv := serve(t, counted(&n, fileHandler(testContent, "")))
				t.Cleanup(func() {
					if n.Load() != 0 {
						t.Errorf("a cancelled check reached the server")
					}
				})
				return ctx, target(srv.URL), nil
			},
		},
		{
			name: "deadline passed", probe: Head, wantErr: context.DeadlineExceeded,
			setup: func(t *testing.T) (context.Context, Target, func(*ClientOptions)) {
				ctx, cancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
				t.Cleanup(cancel)
				return ctx, target(serve(t, fileHandler(testContent, "")).URL), nil
			},
		},
		{
			name: "cancelled mid-body", probe: Verify, wantErr: context.Canceled,
			setup: func(t *testing.T) (context.Context, Target, func(*ClientOptions)) {
				ctx, cancel := context.WithCancel(t.Context())
				stop := stopCh(t)
				srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", strconv.FormatInt(testSize, 10))
					w.Write(testContent[:512])
					w.(http.Flusher).Flush()
					cancel()
					select {
					case <-r.Context().Done():
					case <-stop:
					}
				})
				return ctx, target(srv.URL), nil
			},
		},
		{
			name: "cancelled while waiting to retry", probe: Verify, wantErr: context.Canceled,
			setup: func(t *testing.T) (context.Context, Target, func(*ClientOptions)) {
				ctx, cancel := context.WithCancel(t.Context())
				srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
					http.Error(w, "busy", 503)
					w.(http.Flusher).Flush()
					cancel()
				})
				// Without cancellation the backoff would wait an hour.
				return ctx, target(srv.URL), func(o *ClientOptions) { o.RetryWaitMin, o.RetryWaitMax = time.Hour, time.Hour }
			},
		},
		{
			name: "cancelled while waiting for headers", probe: Head, wantErr: context.Canceled,
			setup: func(t *testing.T) (context.Context, Target, func(*ClientOptions)) {
				ctx, cancel := context.WithCancel(t.Context())
				stop := stopCh(t)
				srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
					cancel()
					select {
					case <-r.Context().Done():
					case <-stop:
					}
				})
				return ctx, target(srv.URL), nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, tg, mod := tt.setup(t)
			c, tr := newTestClient(t, mod)
			res := tt.probe(ctx, c, tg)
			if res.Kind != KindInternal || !errors.Is(res.Err, tt.wantErr) || res.Detail == "" {
				t.Errorf("got %s, err %v, detail %q; want internal wrapping %v", res.Kind, res.Err, res.Detail, tt.wantErr)
			}
			tr.assertClosed(t)
		})
	}
}

// TestConditionalHeaders: an ETag is sent alone as If-None-Match (a
// server ignores If-Modified-Since beside it), a date alone as
// If-Modified-Since, and neither when nothing is known; the answer is
// judged the same way by Head and Verify.
func TestConditionalHeaders(t *testing.T) {
	t.Parallel()
	const date = "Mon, 02 Jan 2006 15:04:05 GMT"
	for _, tc := range []struct {
		name            string
		etag, modified  string
		wantINM, wantIM string
	}{
		{"etag and date", `"v1"`, date, `"v1"`, ""},
		{"date only", "", date, "", date},
		{"neither", "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			type seen struct{ inm, ims string }
			got := make(chan seen, 4)
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				got <- seen{r.Header.Get("If-None-Match"), r.Header.Get("If-Modified-Since")}
				fileHandler(testContent, `"v1"`)(w, r)
			})
			c, _ := newTestClient(t, nil)
			for _, probe := range []Prober{Head, Verify} {
				tg := target(srv.URL)
				tg.ETag, tg.LastModified = tc.etag, tc.modified
				res := probe(context.Background(), c, tg)
				s := <-got
				if s.inm != tc.wantINM || s.ims != tc.wantIM {
					t.Errorf("sent If-None-Match %q, If-Modified-Since %q; want %q, %q", s.inm, s.ims, tc.wantINM, tc.wantIM)
				}
				if want := tc.etag != "" || tc.modified != ""; (res.Kind == KindUnchanged) != want {
					t.Errorf("%s: %s (%s), unchanged should be %v", tc.name, res.Kind, res.Detail, want)
				}
			}
		})
	}
}

func TestCacheStatus(t *testing.T) {
	tests := []struct {
		h    http.Header
		want string
	}{
		{http.Header{}, ""},
		{http.Header{"X-Cache-Status": {"HIT"}, "Age": {"12"}}, "X-Cache-Status: HIT; Age: 12"},
		{http.Header{"Cache-Status": {"ExampleCache; hit", "Origin; fwd=miss"}}, "Cache-Status: ExampleCache; hit, Origin; fwd=miss"},
		{http.Header{"X-Cache": {"MISS from squid"}, "Age": {"0"}, "Cache-Status": {"nginx; hit"}}, "Cache-Status: nginx; hit; X-Cache: MISS from squid; Age: 0"},
		{http.Header{"X-Cache": {"bad\x01\xffvalue"}}, "X-Cache: bad␁\uFFFDvalue"},
		// A stock Varnish says hit or miss only by X-Varnish's ids.
		{http.Header{"X-Varnish": {"32770 3"}, "Age": {"4"}}, "X-Varnish: 32770 3; Age: 4"},
	}
	for _, tt := range tests {
		if got := CacheStatus(tt.h); got != tt.want {
			t.Errorf("CacheStatus(%v) = %q, want %q", tt.h, got, tt.want)
		}
	}
	long := CacheStatus(http.Header{"X-Cache": {strings.Repeat("h", 1000)}, "Age": {strings.Repeat("9", 1000)}})
	if len(long) > maxCacheStatus {
		t.Errorf("CacheStatus not bounded: %d bytes", len(long))
	}
}

func TestContentRangeTotal(t *testing.T) {
	tests := []struct {
		in   string
		n    int64
		okay bool
	}{
		{"bytes 0-0/1024", 1024, true},
		{"bytes */0", 0, true},
		{" bytes 0-0/ 5 ", 5, true},
		{"bytes 0-0/*", 0, false},
		{"bytes 0-0/-3", 0, false},
		{"items 0-0/10", 0, false},
		{"bytes 0-0", 0, false},
		{"", 0, false},
		{"bytes 0-0/99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		n, ok := contentRangeTotal(tt.in)
		if n != tt.n || ok != tt.okay {
			t.Errorf("contentRangeTotal(%q) = %d, %v; want %d, %v", tt.in, n, ok, tt.n, tt.okay)
		}
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"a\r\nb", 10, "a␍␊b"},
		{"x\x1b[2J\u202Ey", 40, "x␛[2J[U+202E]y"},
		{"\xff", 10, "\uFFFD"},
		{"abcdefghij", 6, "abc…"},
		{"ééééé", 6, "é…"}, // cut on a rune boundary
	}
	for _, tt := range tests {
		if got := clip(tt.in, tt.n); got != tt.want || len(got) > max(tt.n, len("…")) {
			t.Errorf("clip(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	sum := sha256.Sum256(content)
	srv := serve(b, fileHandler(content, ""))
	c, _ := newTestClient(b, nil)
	tg := Target{URL: srv.URL + "/f", Size: int64(len(content)), Algo: "sha256", Hash: hexSum(sum)}
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for b.Loop() {
		if res := Verify(context.Background(), c, tg); res.Kind != KindOK {
			b.Fatalf("%s: %s", res.Kind, res.Detail)
		}
	}
}

// TestMain adds a final sanity check for goroutine leaks. The structural
// guarantees are elsewhere (the package starts no goroutine; every test
// asserts that every response body was closed); this only catches what those
// miss, polling a bounded number of times for transport goroutines to wind
// down after the servers closed.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func checkLeaks() error {
	var leaked []string
	for range 100 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = leaked[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "checks.checkLeaks") {
				continue
			}
			if strings.Contains(g, "mirrorsentry/sentry/checks.") || strings.Contains(g, "net/http.(*persistConn)") ||
				strings.Contains(g, "net/http.(*conn).serve") || strings.Contains(g, "net/http/httptest") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // bounded poll, not synchronisation: see the doc comment
	}
	return fmt.Errorf("leaked goroutines:\n%s", strings.Join(leaked, "\n\n"))
}
