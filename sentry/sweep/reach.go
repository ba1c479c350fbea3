package sweep

import (
	"context"
	"errors"
	"fmt"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/engine"
)

// Whether a mirror answers: checked over each address family this
// vantage point reaches (checks.families) when its host has addresses of
// several, else once.

// families are the address families a mirror is checked over from here:
// those of its host's addresses that this vantage point reaches
// (checks.families), when there are several; nil means one check, over
// whichever family the system picks.
func (t *task) families(ctx context.Context, baseURL string) []checks.Family {
	have, err := t.job.Client.Families(ctx, baseURL)
	if err != nil {
		return nil // the check itself says what is wrong with the name
	}
	var out []checks.Family
	for _, f := range have {
		for _, c := range t.job.Config.Checks.Families {
			if string(f) == c {
				out = append(out, f)
			}
		}
	}
	if len(out) < 2 {
		return nil
	}
	return out
}

// reachMirror checks that a mirror answers — over each address family
// (families), or once — and records each check with its family. It
// returns the check that stands for the mirror (the first that reached
// it, else the first failure), what each family found (nil for one
// check), and the family its files are to be checked over ("" for the
// system's choice: every family answered, or there was one).
func (t *task) reachMirror(ctx context.Context, row *engine.Row, ms *mirrorSweep) (checks.Result, map[string]string, checks.Family) {
	fams := t.families(ctx, ms.m.BaseURL)
	if fams == nil {
		res := checks.Reachable(ctx, t.job.Client, ms.m.BaseURL)
		if !stopped(ctx, res) {
			t.record(ctx, row, ms, "", 0, "HEAD", res, !res.Kind.Failed(), "")
		}
		return res, nil, ""
	}
	found := map[string]string{}
	var best, firstFail *checks.Result
	var pin checks.Family
	for _, f := range fams {
		fctx := checks.WithFamily(ctx, f)
		res := checks.Reachable(fctx, t.job.Client, ms.m.BaseURL)
		if stopped(ctx, res) {
			return res, nil, ""
		}
		t.record(fctx, row, ms, "", 0, "HEAD", res, !res.Kind.Failed(), "") // with its family
		if res.Kind.Failed() {
			found[string(f)] = fmt.Sprintf("%s: %s", res.Kind, res.Detail)
			if firstFail == nil {
				firstFail = &res
			}
			continue
		}
		found[string(f)] = ""
		if best == nil {
			best, pin = &res, f
		}
	}
	if best == nil {
		return *firstFail, found, ""
	}
	if firstFail == nil {
		pin = "" // every family answers: the system picks for the files
	}
	return *best, found, pin
}

// stopped: the check was not the mirror's answer (this sentry stopping,
// or the row's lease gone): it is neither recorded nor counted.
func stopped(ctx context.Context, res checks.Result) bool {
	return ctx.Err() != nil || errors.Is(res.Err, checks.ErrGuarded)
}
