package cli

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirrorsentry/sentry/sentry/internal/humanize"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

// progress draws one live line on a terminal while a command's run goes
// on: the checks this process made and the bytes it verified (the other
// sentries working the same run count in the summary, not here). It is an
// observer of the run's checks.
type progress struct {
	w     io.Writer
	label string
	done  atomic.Int64
	bytes atomic.Int64
	start time.Time
	quit  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// newProgress starts drawing on w, labelled; stop ends it.
func newProgress(w io.Writer, label string) *progress {
	p := &progress{w: w, label: label, start: time.Now(), quit: make(chan struct{})}
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

func (p *progress) draw() {
	el := time.Since(p.start).Round(time.Second)
	fmt.Fprintf(p.w, "\r\033[K%s: %d checks here, %s verified, %s", p.label, p.done.Load(),
		humanize.Bytes(p.bytes.Load()), el)
}

func (p *progress) stop() {
	p.once.Do(func() { close(p.quit) })
	p.wg.Wait()
}

func (p *progress) CheckDone(c observe.CheckEvent) {
	p.done.Add(1)
	p.bytes.Add(c.BytesVerified)
}

func (p *progress) StateChanged(observe.StateChangeEvent) {}
func (p *progress) GuardHeld(observe.GuardEvent)          {}
func (p *progress) RunFinished(observe.RunEvent)          {}
