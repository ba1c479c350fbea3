package checks

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// answer is what one request of a sampled check brought: its shape, for
// the next step, or with final the check's result (a verdict on the
// bytes, or a failure to get any answer). whole is the unread answer
// when it carries the whole file.
type answer struct {
	shape answerShape
	whole *http.Response
	res   Result
	final bool
}

func finalAnswer(r Result) answer { return answer{res: r, final: true} }

// ask makes one request for the ranges rs and reads its answer, comparing
// every picked block its parts carry whole.
func (s *sampling) ask(rs []byteRange) answer {
	p := s.p
	if p.parent.Err() != nil {
		return finalAnswer(p.cancelled(nil))
	}
	resp, err := p.do(http.MethodGet, http.Header{"Range": {rangeHeader(rs)}}, nil)
	if err != nil {
		return finalAnswer(p.fail(err))
	}
	p.meta(resp)
	note := encodingNote(resp.Header)
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		return answer{shape: answerWhole, whole: resp}
	case http.StatusRequestedRangeNotSatisfiable:
		drainClose(resp.Body, drainLimit)
		if total, ok := contentRangeTotal(resp.Header.Get("Content-Range")); ok && total != s.t.Size {
			p.res.Bytes = total
			return finalAnswer(p.set(KindSizeMismatch, "Content-Range size %d, want %d%s", total, s.t.Size, note))
		}
		return answer{shape: answerRefused}
	default:
		drainClose(resp.Body, drainLimit)
		return finalAnswer(p.status(resp.StatusCode, note))
	}
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "multipart/byteranges" {
		defer resp.Body.Close() // not drained: an answer is not read past what was asked
		return s.readParts(resp.Body, params["boundary"], rs, note)
	}
	start, end, total, valid := parseContentRange(resp.Header.Get("Content-Range"))
	switch {
	case valid && total >= 0 && total != s.t.Size:
		drainClose(resp.Body, rangeDrainLimit)
		p.res.Bytes = total
		return finalAnswer(p.set(KindSizeMismatch, "Content-Range size %d, want %d%s", total, s.t.Size, note))
	case valid && total >= 0 && start == 0 && end == s.t.Size-1:
		return answer{shape: answerWhole, whole: resp}
	case !valid || total < 0 || resp.ContentLength >= 0 && resp.ContentLength != end-start+1:
		drainClose(resp.Body, rangeDrainLimit)
		return answer{shape: answerBroken}
	}
	defer resp.Body.Close()
	body := &limitedBody{rc: resp.Body, left: s.left}
	defer func() { s.left = body.left }()
	s.chk.startPart()
	return s.readPart(body, start, end, note)
}

// readParts reads a multipart/byteranges answer until its parts covered
// every range asked, or it ends.
func (s *sampling) readParts(body io.ReadCloser, boundary string, rs []byteRange, note string) answer {
	if boundary == "" {
		return answer{shape: answerBroken}
	}
	lb := &limitedBody{rc: body, left: s.left}
	defer func() { s.left = lb.left }()
	mr := multipart.NewReader(lb, boundary)
	for s.chk.covered(rs) < len(rs) {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return answer{shape: answerParts}
		}
		if err != nil {
			return s.readFailed(err, note)
		}
		start, end, total, valid := parseContentRange(part.Header.Get("Content-Range"))
		switch {
		case valid && total >= 0 && total != s.t.Size:
			s.p.res.Bytes = total
			return finalAnswer(s.fail(KindSizeMismatch, "Content-Range size %d, want %d%s", total, s.t.Size, note))
		case !valid || total < 0:
			return answer{shape: answerBroken}
		}
		s.chk.startPart()
		if a := s.readPart(part, start, end, note); a.final || a.shape != answerParts {
			return a
		}
	}
	return answer{shape: answerParts}
}

// readPart reads the part of bytes start-end from r, comparing the picked
// blocks it carries whole: exactly its length, or the answer is broken.
func (s *sampling) readPart(r io.Reader, start, end int64, note string) answer {
	want := end - start + 1
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	lr := io.LimitReader(r, want+1)
	pos, n := start, int64(0)
	for {
		m, err := lr.Read(buf)
		if m > 0 {
			if n+int64(m) > want {
				return answer{shape: answerBroken} // longer than its Content-Range
			}
			if bad := s.chk.feed(pos, buf[:m]); bad >= 0 {
				return finalAnswer(s.mismatch(bad, note))
			}
			pos += int64(m)
			n += int64(m)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if n == want {
				break // all of it came; what follows is the next part's business
			}
			return s.readFailed(err, note)
		}
	}
	if n < want {
		return answer{shape: answerBroken} // shorter than its Content-Range
	}
	return answer{shape: answerParts}
}

// readFailed classifies an error met reading an answer: the connection's
// (a stall, a timeout, a reset: a failure like any read's), or the
// answer's (past its bound, cut short, not multipart as it says: broken,
// not evidence against the copy).
func (s *sampling) readFailed(err error, note string) answer {
	p := s.p
	if p.parent.Err() != nil {
		return finalAnswer(p.cancelled(err))
	}
	var ne net.Error
	if !errors.Is(err, ErrBodyIdle) && !errors.As(err, &ne) {
		return answer{shape: answerBroken}
	}
	p.res.Err = err
	if errors.Is(err, ErrBodyIdle) {
		return finalAnswer(s.fail(KindTimeout, "%s while reading sampled blocks%s", p.slowWords(err), note))
	}
	k, d := classifyError(err)
	if k == KindTimeout {
		return finalAnswer(s.fail(KindTimeout, "%s while reading sampled blocks%s", d, note))
	}
	return finalAnswer(s.fail(KindTruncated, "sampled answer broke after %d of %d blocks (%s)%s", s.chk.ndone, len(s.chk.want), innermost(err), note))
}

// fail ends the check with kind, saying how many blocks it compared.
func (s *sampling) fail(kind Kind, format string, args ...any) Result {
	s.p.res.Sampled, s.p.res.SampledBytes = s.chk.ndone, s.chk.bytes
	return s.p.set(kind, format, args...)
}

// mismatch reports the block whose digest differs.
func (s *sampling) mismatch(bad int, note string) Result {
	c := s.chk
	start, end := int64(bad)*c.b.Size, min(int64(bad+1)*c.b.Size, c.size)-1
	want := hex.EncodeToString(c.b.digest(bad))
	// The block that differs was read and compared too.
	s.p.res.Sampled, s.p.res.SampledBytes = c.ndone+1, c.bytes+end-start+1
	return s.p.set(KindChecksumMismatch, "block %d of %d (bytes %d-%d) differs: sha256 %s…, want %s… (%d of %d sampled blocks read)%s",
		bad, c.b.Count(), start, end, hex.EncodeToString(c.got)[:hashPrefixLen], want[:hashPrefixLen], c.ndone+1, len(c.want), note)
}

// blockCheck hashes the picked blocks of the bytes it is fed, each when a
// part carries it whole, and compares it with the master's digest.
type blockCheck struct {
	b     Blocks
	size  int64
	want  []int  // picked blocks, ascending
	done  []bool // by index in want: compared
	ndone int
	cur   int // index in want of the block being hashed, -1 for none
	h     hash.Hash
	bytes int64  // bytes compared
	got   []byte // the digest of the block that differed
}

func newBlockCheck(b Blocks, size int64, pick []int) *blockCheck {
	return &blockCheck{b: b, size: size, want: pick, done: make([]bool, len(pick)), cur: -1, h: sha256.New()}
}

// pending returns the picked blocks not compared yet, ascending.
func (c *blockCheck) pending() []int {
	out := make([]int, 0, len(c.want)-c.ndone)
	for i, b := range c.want {
		if !c.done[i] {
			out = append(out, b)
		}
	}
	return out
}

// covered counts the ranges of rs whose picked blocks are all compared.
func (c *blockCheck) covered(rs []byteRange) int {
	n := 0
	for _, r := range rs {
		first, last := int(r.start/c.b.Size), int(r.end/c.b.Size)
		i := sort.SearchInts(c.want, first)
		all := true
		for ; i < len(c.want) && c.want[i] <= last; i++ {
			all = all && c.done[i]
		}
		if all {
			n++
		}
	}
	return n
}

// startPart drops a block a previous part began and did not end.
func (c *blockCheck) startPart() { c.cur = -1 }

// feed takes p, the bytes at file offset pos. A picked block not compared
// yet is hashed when p (with what was fed of the same part before)
// carries it from its first byte; once complete it is compared. It
// returns the block whose digest differs, or -1.
func (c *blockCheck) feed(pos int64, p []byte) int {
	for len(p) > 0 {
		b := int(pos / c.b.Size)
		blockStart := int64(b) * c.b.Size
		blockEnd := min(blockStart+c.b.Size, c.size)
		take := min(int64(len(p)), blockEnd-pos)
		if i := sort.SearchInts(c.want, b); i < len(c.want) && c.want[i] == b && !c.done[i] {
			if c.cur != i && pos == blockStart {
				c.cur = i
				c.h.Reset()
			}
			if c.cur == i {
				c.h.Write(p[:take])
				if pos+take == blockEnd {
					c.cur = -1
					c.got = c.h.Sum(c.got[:0])
					if subtle.ConstantTimeCompare(c.got, c.b.digest(b)) != 1 {
						return b
					}
					c.done[i] = true
					c.ndone++
					c.bytes += blockEnd - blockStart
				}
			}
		}
		pos += take
		p = p[take:]
	}
	return -1
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*":
// total -1).
func parseContentRange(v string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	s, e, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err error
	if start, err = strconv.ParseInt(strings.TrimSpace(s), 10, 64); err != nil || start < 0 {
		return 0, 0, 0, false
	}
	if end, err = strconv.ParseInt(strings.TrimSpace(e), 10, 64); err != nil || end < start {
		return 0, 0, 0, false
	}
	total = -1
	if t := strings.TrimSpace(tot); t != "*" {
		if total, err = strconv.ParseInt(t, 10, 64); err != nil || total <= end {
			return 0, 0, 0, false
		}
	}
	return start, end, total, true
}
