package sweep

import (
	"context"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
)

// Whether a mirror answers: checked over each address family this
// vantage point reaches (checks.families) when its host has addresses of
// several, else once.

// reachMirror checks that a mirror answers — over each address family
// this vantage point reaches (mirrorjob.Families, mirrorjob.ReachOver),
// or once — and records each check with its family. It returns the check
// that stands for the mirror, what each family found (nil for one
// check), and the family its files are to be checked over ("" for the
// system's choice: every family answered, or there was one).
func (t *task) reachMirror(ctx context.Context, row *engine.Row, ms *mirrorSweep) (checks.Result, map[string]string, checks.Family) {
	fams := mirrorjob.Families(ctx, t.job.Client, t.job.Config.Checks.Families, ms.m.BaseURL)
	if fams == nil {
		res := checks.Reachable(ctx, t.job.Client, ms.m.BaseURL)
		if !mirrorjob.Stopped(ctx, res) {
			t.record(ctx, row, ms, "", 0, "HEAD", res, !res.Kind.Failed(), "")
		}
		return res, nil, ""
	}
	r, ok := mirrorjob.ReachOver(ctx, t.job.Client, ms.m.BaseURL, fams, func(fctx context.Context, res checks.Result) {
		t.record(fctx, row, ms, "", 0, "HEAD", res, !res.Kind.Failed(), "") // with its family
	})
	if !ok {
		return r.Result, nil, ""
	}
	return r.Result, r.Found, r.Pin
}
