package sentry

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirrorsentry/sentry/internal/humanize"
)

// progress draws one live line on a terminal: checks done of all, and bytes
// verified. With a nil writer it does nothing (not a terminal, or tests).
type progress struct {
	w     io.Writer
	label string
	total int
	done  atomic.Int64
	bytes atomic.Int64
	start time.Time
	quit  chan struct{}
	wg    sync.WaitGroup
}

func newProgress(w io.Writer, label string, total int) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now(), quit: make(chan struct{})}
	if w == nil {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.quit:
				p.draw()
				fmt.Fprintln(p.w)
				return
			}
		}
	}()
	return p
}

func (p *progress) add(n int, bytes int64) {
	p.done.Add(int64(n))
	p.bytes.Add(bytes)
}

func (p *progress) draw() {
	el := time.Since(p.start).Round(time.Second)
	fmt.Fprintf(p.w, "\r\033[K%s: %d/%d files checked, %s verified, %s", p.label, p.done.Load(), p.total,
		humanize.Bytes(p.bytes.Load()), el)
}

func (p *progress) stop() {
	if p.w == nil {
		return
	}
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	p.wg.Wait()
}
