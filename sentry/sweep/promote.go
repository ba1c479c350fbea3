package sweep

import (
	"context"
	"time"

	"github.com/mirrorsentry/sentry/sentry/promote"
)

// Going live: after a sweep's judgement, every alias of releases.aliases
// is judged against the newest releases sentry primed, and moved to the
// newest whose product is ready (package promote): a release whose
// mirrors caught up after its prime goes live at the next sweep.

// promoteTimeout bounds that judgement.
const promoteTimeout = 30 * time.Second

// promoteAfter chains, to what a judgement does once the run's end is
// recorded (after), a judgement of the aliases.
func (t *task) promoteAfter(after func()) func() {
	return func() {
		if after != nil {
			after()
		}
		j := t.job
		ctx, cancel := context.WithTimeout(context.Background(), promoteTimeout)
		defer cancel()
		promote.Checker{P: &promote.Promoter{Config: j.Config, Store: j.Store, Logger: j.Logger, Observer: j.Observer}}.
			AfterSweep(ctx, "sweep", t.run.ID)
	}
}
