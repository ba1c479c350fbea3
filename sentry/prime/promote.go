package prime

import (
	"context"
	"time"

	"github.com/mirrorsentry/sentry/sentry/promote"
)

// Going live: after each mirror a prime marks, and after its judgement,
// the release's aliases (releases.aliases) are judged, and those due are
// moved to the release's products (package promote): the alias goes live
// as soon as every location is ready, not when the slowest mirror ends.

// promoteTimeout bounds a judgement of the aliases after the run ended.
const promoteTimeout = 30 * time.Second

func (j *Job) promoter() promote.Checker {
	return promote.Checker{P: &promote.Promoter{Config: j.Config, Store: j.Store, Logger: j.Logger, Observer: j.Observer}}
}

// promoteAfter chains, to what a judgement does once the run's end is
// recorded (after), a judgement of the release's aliases.
func (t *task) promoteAfter(after func()) func() {
	return func() {
		if after != nil {
			after()
		}
		ctx, cancel := context.WithTimeout(context.Background(), promoteTimeout)
		defer cancel()
		t.job.promoter().AfterMarks(ctx, t.plan.Release.Name, "prime", t.run.ID)
	}
}
