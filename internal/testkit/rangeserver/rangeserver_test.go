package rangeserver_test

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/rangeserver"
)

const size = 100

// file is the served file: byte i is i, so a part's bytes say where they
// come from.
var file = func() []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// part is an inclusive byte range of the file an answer carries.
type part struct{ start, end int64 }

func (p part) String() string { return fmt.Sprintf("%d-%d", p.start, p.end) }

// answer is what a test wants of a response.
type answer struct {
	status int
	// parts are the file's ranges the body carries, in order: one for a
	// 200 (the whole file) or a single 206, several for a multipart 206.
	parts []part
	// multipart: a multipart/byteranges body.
	multipart bool
	// contentRange is the Content-Range header ("" for none).
	contentRange string
}

var whole = answer{status: 200, parts: []part{{0, size - 1}}}

func single(start, end int64) answer {
	return answer{status: 206, parts: []part{{start, end}}, contentRange: fmt.Sprintf("bytes %d-%d/%d", start, end, size)}
}

func multi(parts ...part) answer { return answer{status: 206, parts: parts, multipart: true} }

// TestBehaviours: each Behaviour answers ranges as the server it stands
// for does, and the zero Behaviour as RFC 9110 lets a server that honours
// every range.
func TestBehaviours(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		b      rangeserver.Behaviour
		ranges string // the Range header ("" for none)
		want   answer
	}{
		{"no Range: the whole file", rangeserver.Behaviour{}, "", whole},
		{"one range: a plain 206", rangeserver.Behaviour{}, "bytes=10-19", single(10, 19)},
		{"a suffix range", rangeserver.Behaviour{}, "bytes=-10", single(90, 99)},
		{"a suffix longer than the file", rangeserver.Behaviour{}, "bytes=-500", single(0, 99)},
		{"an open range", rangeserver.Behaviour{}, "bytes=95-", single(95, 99)},
		{"an end past the file", rangeserver.Behaviour{}, "bytes=90-200", single(90, 99)},
		{"a range past the end: the whole file", rangeserver.Behaviour{}, "bytes=100-", whole},
		{"an end before the start: the whole file", rangeserver.Behaviour{}, "bytes=5-2", whole},
		{"another unit: the whole file", rangeserver.Behaviour{}, "items=0-9", whole},
		{"one bad range of several: the whole file", rangeserver.Behaviour{}, "bytes=0-9,x-y", whole},
		{"several ranges, in the order asked", rangeserver.Behaviour{}, "bytes=50-59, 0-9,20-29", multi(part{50, 59}, part{0, 9}, part{20, 29})},
		{"the first MaxParts parts (lighttpd)", rangeserver.Behaviour{MaxParts: 2}, "bytes=50-59,0-9,20-29", multi(part{50, 59}, part{0, 9})},
		{"MaxParts 1: the first part as a plain 206", rangeserver.Behaviour{MaxParts: 1}, "bytes=50-59,0-9", single(50, 59)},
		{"no more than MaxParts: every part", rangeserver.Behaviour{MaxParts: 2}, "bytes=0-9,20-29", multi(part{0, 9}, part{20, 29})},
		{"416 to several ranges (Varnish)", rangeserver.Behaviour{RefuseMulti: true}, "bytes=0-9,20-29",
			answer{status: 416, contentRange: "bytes */100"}},
		{"one range of a server refusing several", rangeserver.Behaviour{RefuseMulti: true}, "bytes=0-9", single(0, 9)},
		{"the whole file past WholeAbove (Apache, nginx)", rangeserver.Behaviour{WholeAbove: 2}, "bytes=0-9,20-29,40-49", whole},
		{"WholeAbove ranges and no more: answered", rangeserver.Behaviour{WholeAbove: 2}, "bytes=0-9,20-29", multi(part{0, 9}, part{20, 29})},
		{"the whole file as a 206 past WholeAbove", rangeserver.Behaviour{WholeAbove: 2, WholeAs206: true}, "bytes=0-9,20-29,40-49", single(0, 99)},
		{"neighbours within Coalesce merged, the parts sorted", rangeserver.Behaviour{Coalesce: 2}, "bytes=40-49,0-9,12-19",
			multi(part{0, 19}, part{40, 49})},
		{"a gap wider than Coalesce kept, the parts sorted", rangeserver.Behaviour{Coalesce: 1}, "bytes=40-49,0-9,12-19",
			multi(part{0, 9}, part{12, 19}, part{40, 49})},
		{"overlapping ranges merged into one plain 206", rangeserver.Behaviour{Coalesce: 1}, "bytes=0-29,10-19", single(0, 29)},
		{"the parts in reverse order", rangeserver.Behaviour{Reverse: true}, "bytes=0-9,20-29,40-49", multi(part{40, 49}, part{20, 29}, part{0, 9})},
		{"the first MaxParts, then reversed", rangeserver.Behaviour{MaxParts: 2, Reverse: true}, "bytes=0-9,20-29,40-49", multi(part{20, 29}, part{0, 9})},
		{"no range honoured (Python)", rangeserver.Behaviour{IgnoreRanges: true}, "bytes=0-9", whole},
		{"no range honoured, several asked", rangeserver.Behaviour{IgnoreRanges: true, RefuseMulti: true}, "bytes=0-9,20-29", whole},
		{"bytes=0-0 as the whole file (busybox)", rangeserver.Behaviour{ZeroEndWhole: true}, "bytes=0-0", single(0, 99)},
		{"any other range of busybox answered", rangeserver.Behaviour{ZeroEndWhole: true}, "bytes=0-1", single(0, 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := &rangeserver.Server{B: c.b, Files: map[string][]byte{"/pub/f.bin": file}}
			resp, body := get(s, http.MethodGet, "/pub/f.bin", c.ranges)
			checkAnswer(t, resp, body, c.want)
			if resp.Header.Get("Accept-Ranges") != "bytes" {
				t.Errorf("Accept-Ranges %q, want bytes", resp.Header.Get("Accept-Ranges"))
			}
			if s.Requests() != 1 || s.BodyBytes() != int64(len(body)) {
				t.Errorf("counted %d requests and %d body bytes, want 1 and %d", s.Requests(), s.BodyBytes(), len(body))
			}
		})
	}
}

// TestHeadAndMisses: HEAD answers as GET does without a body (and counts
// none), and what the server does not hold is a 404 — as is every method
// but GET and HEAD.
func TestHeadAndMisses(t *testing.T) {
	t.Parallel()
	s := &rangeserver.Server{Files: map[string][]byte{"/pub/f.bin": file}, Header: http.Header{"X-Cache": {"HIT"}}}
	resp, body := get(s, http.MethodHead, "/pub/f.bin", "bytes=10-19")
	if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != "bytes 10-19/100" || resp.Header.Get("Content-Length") != "10" || len(body) != 0 {
		t.Errorf("HEAD of a range: %d, Content-Range %q, Content-Length %q, %d body bytes; want a 206 of 10-19 and no body",
			resp.StatusCode, resp.Header.Get("Content-Range"), resp.Header.Get("Content-Length"), len(body))
	}
	if resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("Header not added: X-Cache %q", resp.Header.Get("X-Cache"))
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/pub/other.bin"}, {http.MethodPost, "/pub/f.bin"}, {http.MethodPut, "/pub/f.bin"},
	} {
		if resp, _ := get(s, c.method, c.path, ""); resp.StatusCode != 404 || resp.Header.Get("X-Cache") != "" {
			t.Errorf("%s %s: %d, X-Cache %q; want a plain 404", c.method, c.path, resp.StatusCode, resp.Header.Get("X-Cache"))
		}
	}
	if s.Requests() != 4 || s.BodyBytes() != 0 {
		t.Errorf("counted %d requests and %d body bytes, want 4 and none", s.Requests(), s.BodyBytes())
	}
}

// TestEmptyFile: an empty file has no range to answer; it is answered
// whole.
func TestEmptyFile(t *testing.T) {
	t.Parallel()
	s := &rangeserver.Server{Files: map[string][]byte{"/pub/empty": {}}}
	resp, _ := get(s, http.MethodGet, "/pub/empty", "bytes=0-0")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != "0" || resp.Header.Get("Content-Range") != "" {
		t.Errorf("an empty file: %d, Content-Length %q, Content-Range %q; want an empty 200",
			resp.StatusCode, resp.Header.Get("Content-Length"), resp.Header.Get("Content-Range"))
	}
}

// get sends one request to s and returns its answer and body.
func get(s *rangeserver.Server, method, path, ranges string) (*http.Response, []byte) {
	r := httptest.NewRequest(method, path, nil)
	if ranges != "" {
		r.Header.Set("Range", ranges)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w.Result(), w.Body.Bytes()
}

// checkAnswer compares resp with want: status, Content-Range, and the
// parts of the file the body carries (their bytes and, for a multipart
// body, each part's Content-Range), with Content-Length the body's length.
func checkAnswer(t *testing.T, resp *http.Response, body []byte, want answer) {
	t.Helper()
	if resp.StatusCode != want.status {
		t.Fatalf("status %d, want %d", resp.StatusCode, want.status)
	}
	if got := resp.Header.Get("Content-Range"); got != want.contentRange {
		t.Errorf("Content-Range %q, want %q", got, want.contentRange)
	}
	if want.status == 416 {
		return
	}
	if n, err := strconv.Atoi(resp.Header.Get("Content-Length")); err != nil || n != len(body) {
		t.Errorf("Content-Length %q for a body of %d bytes", resp.Header.Get("Content-Length"), len(body))
	}
	mediaType, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if got := mediaType == "multipart/byteranges"; got != want.multipart {
		t.Fatalf("Content-Type %q, want multipart %v", resp.Header.Get("Content-Type"), want.multipart)
	}
	if !want.multipart {
		if p := want.parts[0]; !bytes.Equal(body, file[p.start:p.end+1]) {
			t.Errorf("body of %d bytes, want bytes %s of the file", len(body), p)
		}
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var got []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part %d: %v", len(got)+1, err)
		}
		var x part
		var total int
		if _, err := fmt.Sscanf(p.Header.Get("Content-Range"), "bytes %d-%d/%d", &x.start, &x.end, &total); err != nil || total != size {
			t.Fatalf("part %d: Content-Range %q", len(got)+1, p.Header.Get("Content-Range"))
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, file[x.start:x.end+1]) {
			t.Errorf("part %d (%s): %d bytes that are not those of the file", len(got)+1, x, len(b))
		}
		got = append(got, x)
	}
	if fmt.Sprint(got) != fmt.Sprint(want.parts) {
		t.Errorf("parts %v, want %v", got, want.parts)
	}
}
