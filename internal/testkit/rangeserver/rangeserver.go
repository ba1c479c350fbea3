// Package rangeserver serves files the ways real servers answer requests
// for ranges — all of them in one multipart/byteranges answer, only the
// first N (lighttpd: 10), 416 to more than one (Varnish), 200 past a
// limit (Apache MaxRanges, nginx max_ranges), ranges coalesced into one
// part, parts in another order, no range at all (Python's http.server),
// the whole file for bytes=0-0 (busybox httpd) — for tests of sampled
// verification. The behaviours were measured on the real servers; tests
// of the real ones start them (package realmirror).
package rangeserver

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// Behaviour is how a server answers a request for ranges. The zero
// Behaviour answers every range asked, in the order asked, one part each
// (a single range as a plain 206).
type Behaviour struct {
	// MaxParts answers only the first MaxParts parts (lighttpd: 10); 0:
	// every part.
	MaxParts int
	// RefuseMulti answers 416 with the file's size (Content-Range:
	// bytes */SIZE) to more than one range (Varnish).
	RefuseMulti bool
	// WholeAbove answers more than WholeAbove ranges with the whole file,
	// 200 (Apache with MaxRanges, nginx with max_ranges); 0: no limit.
	WholeAbove int
	// Coalesce sorts the ranges and answers those separated by at most
	// Coalesce bytes in one part (RFC 9110 lets a server do so; lighttpd
	// merges ranges that touch); 0: none merged.
	Coalesce int64
	// Reverse sends the parts in reverse order.
	Reverse bool
	// IgnoreRanges answers every request with the whole file, 200.
	IgnoreRanges bool
	// ZeroEndWhole answers a single range ending at byte 0 ("bytes=0-0")
	// with the whole file as a 206 of bytes 0-(SIZE-1), as busybox httpd
	// does.
	ZeroEndWhole bool
	// WholeAs206 sends the whole file of WholeAbove as a 206 of bytes
	// 0-(SIZE-1) instead of a 200.
	WholeAs206 bool
}

// Server serves files by URL path with a Behaviour.
type Server struct {
	B Behaviour
	// Files maps a URL path ("/pub/a.bin") to its contents.
	Files map[string][]byte
	// Header, when set, is added to every answer.
	Header http.Header

	requests, bodyBytes atomic.Int64
}

// Requests counts the requests answered.
func (s *Server) Requests() int64 { return s.requests.Load() }

// BodyBytes counts the body bytes sent.
func (s *Server) BodyBytes() int64 { return s.bodyBytes.Load() }

// span is an inclusive byte range.
type span struct{ start, end int64 }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	body, ok := s.Files[r.URL.Path]
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	for k, vs := range s.Header {
		w.Header()[k] = vs
	}
	w.Header().Set("Accept-Ranges", "bytes")
	size := int64(len(body))
	rs, ok := parseRange(r.Header.Get("Range"), size)
	switch {
	case !ok || s.B.IgnoreRanges:
		s.whole(w, r, body, false)
		return
	case len(rs) > 1 && s.B.RefuseMulti:
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	case s.B.WholeAbove > 0 && len(rs) > s.B.WholeAbove:
		s.whole(w, r, body, s.B.WholeAs206)
		return
	case len(rs) == 1 && rs[0].end == 0 && s.B.ZeroEndWhole:
		s.whole(w, r, body, true)
		return
	}
	if s.B.Coalesce > 0 {
		slices.SortFunc(rs, func(a, b span) int { return cmp.Compare(a.start, b.start) })
		merged := []span{rs[0]}
		for _, x := range rs[1:] {
			if last := &merged[len(merged)-1]; x.start <= last.end+1+s.B.Coalesce {
				last.end = max(last.end, x.end)
				continue
			}
			merged = append(merged, x)
		}
		rs = merged
	}
	if s.B.MaxParts > 0 && len(rs) > s.B.MaxParts {
		rs = rs[:s.B.MaxParts]
	}
	if s.B.Reverse {
		slices.Reverse(rs)
	}
	if len(rs) == 1 {
		x := rs[0]
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", x.start, x.end, size))
		w.Header().Set("Content-Length", strconv.FormatInt(x.end-x.start+1, 10))
		w.WriteHeader(http.StatusPartialContent)
		s.write(w, r, body[x.start:x.end+1])
		return
	}
	const boundary = "3d6b6a416f9b5"
	var b strings.Builder
	for _, x := range rs {
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes %d-%d/%d\r\n\r\n", boundary, x.start, x.end, size)
		b.Write(body[x.start : x.end+1])
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	w.Header().Set("Content-Type", "multipart/byteranges; boundary="+boundary)
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusPartialContent)
	s.write(w, r, []byte(b.String()))
}

// whole answers with the whole file, as a 200 or as a 206 of all of it.
func (s *Server) whole(w http.ResponseWriter, r *http.Request, body []byte, as206 bool) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if as206 {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(body)-1, len(body)))
		w.WriteHeader(http.StatusPartialContent)
	}
	s.write(w, r, body)
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, b []byte) {
	if r.Method == http.MethodHead {
		return
	}
	n, _ := w.Write(b)
	s.bodyBytes.Add(int64(n))
}

// parseRange parses "bytes=A-B,C-,-N" against a file of size bytes: the
// ranges in the order asked. ok is false for no header, another unit, or
// a range that is not satisfiable.
func parseRange(v string, size int64) ([]span, bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || size == 0 {
		return nil, false
	}
	var out []span
	for _, part := range strings.Split(spec, ",") {
		a, b, found := strings.Cut(strings.TrimSpace(part), "-")
		if !found {
			return nil, false
		}
		var x span
		switch {
		case a == "":
			n, err := strconv.ParseInt(b, 10, 64)
			if err != nil || n <= 0 {
				return nil, false
			}
			x = span{max(0, size-n), size - 1}
		default:
			s, err := strconv.ParseInt(a, 10, 64)
			if err != nil || s < 0 || s >= size {
				return nil, false
			}
			x = span{s, size - 1}
			if b != "" {
				e, err := strconv.ParseInt(b, 10, 64)
				if err != nil || e < s {
					return nil, false
				}
				x.end = min(e, size-1)
			}
		}
		out = append(out, x)
	}
	return out, len(out) > 0
}
