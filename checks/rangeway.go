package checks

import "fmt"

// RangeWay is how a server answers requests for several ranges, as sentry
// learned it from its answers to sampled checks (Sample). It is a property
// of the server, never a failure of the mirror: lighttpd answers only the
// first 10 ranges of a request, Varnish answers 416 to more than one,
// Apache with MaxRanges and nginx with max_ranges answer 200 with the
// whole file past their limit, some servers honour no range at all. A
// sampled check asks the way that works, and the copy is judged by its
// bytes whatever the way.
//
// The zero RangeWay is "nothing learned": every range in one request.
type RangeWay struct {
	// MaxRanges is the most ranges one request asks for; 0: no limit
	// learned.
	MaxRanges int
	// InFull: the server does not honour ranges (it answers a single
	// range with the whole file, or otherwise than asked): sampled checks
	// read the file in full.
	InFull bool
}

// Known reports whether anything was learned.
func (w RangeWay) Known() bool { return w.InFull || w.MaxRanges > 0 }

// String says what the way is, for logs and reasons.
func (w RangeWay) String() string {
	switch {
	case w.InFull:
		return "ranges not honoured: read in full"
	case w.MaxRanges == 1:
		return "one range per request"
	case w.MaxRanges > 1:
		return fmt.Sprintf("at most %d ranges per request", w.MaxRanges)
	}
	return "every range in one request"
}

// Merge is what w and learned say together: the stricter of the two (a
// lower limit; not honouring ranges at all before any limit).
func (w RangeWay) Merge(learned RangeWay) RangeWay {
	if w.InFull || learned.InFull {
		return RangeWay{InFull: true}
	}
	switch {
	case learned.MaxRanges <= 0:
		return w
	case w.MaxRanges <= 0 || learned.MaxRanges < w.MaxRanges:
		return RangeWay{MaxRanges: learned.MaxRanges}
	}
	return w
}

// answerShape is how one answer to a request for ranges came.
type answerShape int8

const (
	// answerParts: a 206 whose parts were all read, to the answer's end
	// (every range asked, a prefix of them — lighttpd's first 10 —, some
	// coalesced, in any order).
	answerParts answerShape = iota
	// answerBroken: a 206 that could not be read as ranges past some
	// point: no boundary, a part without the file's size, a part not
	// where it says, a part longer or shorter than its Content-Range,
	// parts past the answer's bound. What was read before counts.
	answerBroken
	// answerWhole: the whole file, as a 200 or as a 206 of bytes
	// 0-(size-1).
	answerWhole
	// answerRefused: a 416 giving the file's size (Varnish to several
	// ranges), or no size.
	answerRefused
)

func (s answerShape) String() string {
	switch s {
	case answerParts:
		return "parts"
	case answerBroken:
		return "broken parts"
	case answerWhole:
		return "the whole file"
	case answerRefused:
		return "416"
	}
	return "?"
}

// told says what an answer of this shape that covered covered ranges
// was, for a Detail.
func (s answerShape) told(covered int) string {
	if s == answerParts {
		if covered == 0 {
			return "parts that were not asked"
		}
		return fmt.Sprintf("%d of them", covered)
	}
	return s.String()
}

// rangeStep is what a sampled check does after one answer.
type rangeStep struct {
	// limit is the most ranges the next request asks for, when the check
	// goes on asking for ranges.
	limit int
	// bodyInFull: verify the answer's own body in full (it is the whole
	// file, and only one range was asked: asking again would bring the
	// same).
	bodyInFull bool
	// getInFull: ask for the file in full, without Range.
	getInFull bool
}

// nextStep decides, from an answer to a request for asked ranges of which
// it covered covered (every picked block of them compared), what the
// check does next. An answer that covered them all leaves the limit as it
// is (asked); a clean answer that covered
// some (a server answering only the first N ranges) sets the limit to N;
// an answer that covered none, or could not be read as ranges, halves
// the limit; past a single range, the file is read in full — from the
// answer itself when it is the whole file. Every step either compares
// blocks, lowers the limit, or ends in a full read, so a check ends.
func nextStep(asked, covered int, shape answerShape) rangeStep {
	switch {
	case asked <= 0:
		return rangeStep{getInFull: true} // unreachable: nothing asked
	case covered >= asked:
		return rangeStep{limit: asked}
	case shape == answerParts && covered > 0:
		return rangeStep{limit: covered}
	case asked > 1:
		return rangeStep{limit: max(1, asked/2)}
	case shape == answerWhole:
		return rangeStep{bodyInFull: true}
	}
	return rangeStep{getInFull: true}
}
