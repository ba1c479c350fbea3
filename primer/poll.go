package primer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"golang.org/x/sync/errgroup"
)

// pending is a file still being polled for. Only the goroutine probing it in
// a round touches it; rounds are separated by errgroup.Wait.
type pending struct {
	f      File
	t      checks.Target
	last   checks.Result // the last poll's answer; Kind "" before the first
	probes int           // polls of this file
	done   bool          // an outcome was emitted
	// main is the file's verification over the mirror's first family,
	// kept while its other families are polled for (families.go); nil
	// before the file was present there.
	main *checks.Result
}

// poll polls for files until each is present (then verified) or the
// deadline has passed (then not_primed).
func (r *run) poll(files []File) error {
	list := make([]*pending, len(files))
	for i, f := range files {
		list[i] = &pending{f: f, t: r.target(f)}
	}
	deadline := r.start.Add(r.cfg.Deadline)
	wait := r.cfg.PollInterval
	for rounds := 1; len(list) > 0; rounds++ {
		final := !time.Now().Before(deadline)
		var err error
		if list, err = r.round(list, final); err != nil {
			return err
		}
		r.log.Debug("poll round", "round", rounds, "final", final, "pending", len(list))
		if len(list) == 0 {
			return nil
		}
		if final {
			for _, p := range list {
				if err := r.emit(p.f, MethodPoll, r.notPrimed(p, rounds)); err != nil {
					return err
				}
			}
			return nil
		}
		if err := sleep(r.ctx, min(wait, time.Until(deadline))); err != nil {
			return err
		}
		wait = min(wait*2, r.cfg.PollMax)
	}
	return nil
}

// round polls every file of list once (or, while the mirror has not been
// seen to hold any file, first only the first r.conc files, and stops there
// when they all answer not_found; never in the final round). The first
// batch completes before the rest of the round starts, so the decision is
// deterministic. It returns the files still pending. After a round stopped
// early, the sampled files go to the back, so that the next round samples
// others: a mirror that syncs in another order than the manifest's is found
// within a few rounds, not at the deadline.
func (r *run) round(list []*pending, final bool) ([]*pending, error) {
	first := min(r.conc, len(list))
	if err := r.probeAll(list[:first], final); err != nil {
		return nil, err
	}
	order := list
	if final || r.seen.Load() || !allNotFound(list[:first]) {
		if err := r.probeAll(list[first:], final); err != nil {
			return nil, err
		}
	} else {
		order = append(append(make([]*pending, 0, len(list)), list[first:]...), list[:first]...)
	}
	out := make([]*pending, 0, len(order))
	for _, p := range order {
		if !p.done {
			out = append(out, p)
		}
	}
	return out, nil
}

func allNotFound(list []*pending) bool {
	for _, p := range list {
		if p.done || p.last.Kind != checks.KindNotFound {
			return false
		}
	}
	return true
}

// probeAll polls the files of list, at most r.conc at once (final: in the
// round at the deadline).
func (r *run) probeAll(list []*pending, final bool) error {
	var g errgroup.Group
	g.SetLimit(r.conc)
	for _, p := range list {
		if err := r.ctx.Err(); err != nil {
			_ = g.Wait()
			return err
		}
		g.Go(func() error { return r.pollOne(p, final) })
	}
	return g.Wait()
}

// pollOne polls one file: a HEAD, and a verification (in full, or by
// sampling) at once when the file is present with the right size; on a
// mirror checked over several families, then a HEAD over each other
// (besides). A file verified right over the first family that another
// family does not serve right yet stays pending, its verification kept:
// the next rounds poll the other families only, until they serve it or
// the round at the deadline (final) ends it with their last answers.
func (r *run) pollOne(p *pending, final bool) error {
	if p.main == nil {
		head, err := r.request(func() checks.Result { return checks.Head(r.ctx, r.cfg.Client, p.t) })
		if err != nil {
			return err
		}
		p.probes++
		switch {
		case head.Kind == checks.KindInternal:
			// Sentry's own data is wrong (an invalid URL or size): polling
			// again cannot help.
			p.done = true
			return r.emit(p.f, MethodHead, head)
		case head.Kind.Failed():
			p.last = head
			return nil
		}
		r.seen.Store(true)
		f, err := r.ready(p.f)
		if err != nil {
			return err
		}
		res, err := r.request(func() checks.Result { return r.verifyFile(f, p.t) })
		if err != nil {
			return err
		}
		p.main = &res
	}
	beside, err := r.besides(p.f, *p.main)
	if err != nil {
		return err
	}
	if !final && !p.main.Kind.Failed() && anyFailed(beside) {
		return nil // not there over another family yet
	}
	p.done = true
	return r.send(p.f.Path, MethodGet, *p.main, beside)
}

// notPrimed is the outcome of a file still absent after the final round.
func (r *run) notPrimed(p *pending, rounds int) checks.Result {
	polls := "poll rounds"
	if rounds == 1 {
		polls = "poll round"
	}
	detail := fmt.Sprintf("not present after %s (%d %s); last answer: %s",
		r.cfg.Deadline, rounds, polls, describe(p.last))
	return checks.Result{
		Kind:         checks.KindNotPrimed,
		Status:       p.last.Status,
		Bytes:        p.last.Bytes,
		Duration:     time.Since(r.start),
		Attempts:     p.probes,
		Detail:       detail,
		ETag:         p.last.ETag,
		LastModified: p.last.LastModified,
		CacheStatus:  p.last.CacheStatus,
		FinalURL:     p.last.FinalURL,
		Err:          fmt.Errorf("primer: %w: %s", ErrNotPrimed, detail),
	}
}

// describe renders a poll answer briefly: "not_found 404",
// "size_mismatch 200 (Content-Length 10, want 20)", "timeout (...)".
func describe(res checks.Result) string {
	if res.Kind == "" {
		return "none"
	}
	s := string(res.Kind)
	if res.Status != 0 {
		s += " " + strconv.Itoa(res.Status)
	}
	if d := res.Detail; d != "" && d != string(res.Kind) && !strings.HasPrefix(d, "HTTP ") {
		s += " (" + d + ")"
	}
	return s
}

// sleep waits for d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
