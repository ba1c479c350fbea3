package checks

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// DefaultMinRate is ClientOptions.MinRate's default: 32 KiB a second.
// A mirror that slow serves its users badly but does serve them, and a
// 500 MiB file at exactly that rate still finishes (in 4.4 hours); a
// drip of a kilobyte a second does not hold a check for hours.
const DefaultMinRate = 32 << 10

// MaxMinRate bounds ClientOptions.MinRate (1 GiB a second): a typo must
// not fail every check of every mirror.
const MaxMinRate = 1 << 30

// SlowBodyError is why a body was given up on: in one BodyIdleTimeout
// window it delivered fewer bytes than the minimum rate asks for (and
// at least MinBodyProgress). It wraps ErrBodyIdle.
type SlowBodyError struct {
	// Got is what the body delivered in the window.
	Got int64
	// Window is the client's BodyIdleTimeout.
	Window time.Duration
	// MinRate is the client's minimum rate, in bytes a second.
	MinRate int64
}

func (e *SlowBodyError) Error() string {
	if e.Got == 0 {
		return fmt.Sprintf("no body bytes for %s", e.Window)
	}
	return fmt.Sprintf("body under the minimum rate of %s/s: %d bytes in %s (%s/s)",
		byteCount(float64(e.MinRate)), e.Got, e.Window, byteCount(float64(e.Got)/e.Window.Seconds()))
}

// Unwrap makes errors.Is(err, ErrBodyIdle) hold.
func (e *SlowBodyError) Unwrap() error { return ErrBodyIdle }

// windowBytes is what a body must deliver in every window of length
// idle at minRate bytes a second: never less than MinBodyProgress.
func windowBytes(minRate int64, idle time.Duration) int64 {
	need := int64(float64(minRate) * idle.Seconds())
	return max(need, MinBodyProgress)
}

// MaxBodyTime is the longest a body of size bytes can take at the
// client's minimum rate before its check times out: every window of
// BodyIdleTimeout must bring its share, so size / MinRate, plus the one
// window in which the last bytes may arrive. With the connect, header
// and retry bounds, it is the bound on a check's time that FAULTS.md
// promises.
func (c *Client) MaxBodyTime(size int64) time.Duration {
	need := windowBytes(c.opts.MinRate, c.opts.BodyIdleTimeout)
	return time.Duration(size/need+1) * c.opts.BodyIdleTimeout
}

// byteCount says n bytes as people read it: "733 B", "32 KiB", "1.5 MiB".
func byteCount(n float64) string {
	switch {
	case n < 1<<10:
		return strconv.FormatFloat(n, 'f', 0, 64) + " B"
	case n < 1<<20:
		return trimZero(n/(1<<10)) + " KiB"
	case n < 1<<30:
		return trimZero(n/(1<<20)) + " MiB"
	}
	return trimZero(n/(1<<30)) + " GiB"
}

func trimZero(v float64) string {
	s := strconv.FormatFloat(v, 'f', 1, 64)
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s
}

// slowWords says why a body wrapping ErrBodyIdle was given up on: the
// *SlowBodyError's words, with the rate it fell below.
func (p *probe) slowWords(err error) string {
	var slow *SlowBodyError
	if errors.As(err, &slow) {
		return slow.Error()
	}
	return fmt.Sprintf("body under %s in %s", byteCount(float64(windowBytes(p.c.opts.MinRate, p.c.opts.BodyIdleTimeout))), p.c.opts.BodyIdleTimeout)
}
