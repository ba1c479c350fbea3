// Package promote moves bouncer aliases to a release when it is ready:
// "go live when ready". An alias (mirror_aliases: firefox-latest →
// Firefox-1.5) names the product the redirector serves for it, and
// moving it to a new release's product is how a release goes live.
//
// For each alias of releases.aliases (alias → product pattern), the
// release's product is the pattern with the release's name. An alias is
// moved (its related_product set, its row created when it has none) when
// every location of that product has reached releases.promote_at of its
// rating-weighted eligible uptake — among the mirrors the deployed
// redirector can offer for the product (admin switch, region row, the
// product's scheme), the share held by those holding the location
// verified — and never to a release first primed before the one the alias
// names now (decide.Promote). Each move is made once, in a transaction
// under a lock of its alias, recorded in sentry_alias_moves, logged, told
// to the observers (the webhook event alias_promoted) and exported
// (sentry_alias_promoted_timestamp_seconds).
//
// A prime asks after each mirror it marks and at its judgement
// (Promoter.Release); a sweep's judgement asks for every alias and the
// newest releases sentry primed (Promoter.Due); `sentry promote` asks by
// hand, and may force a move below the threshold or backwards. With no
// releases.aliases, nothing moves.
package promote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Errors a caller branches on (the command line: exit 1).
var (
	// ErrNoAliases: releases.aliases is empty, so nothing is ever moved.
	ErrNoAliases = errors.New("no alias is configured (releases.aliases)")
	// ErrUnknownAlias: the alias asked for is not in releases.aliases.
	ErrUnknownAlias = errors.New("alias not configured")
	// ErrUnknownRelease: sentry never primed the release.
	ErrUnknownRelease = errors.New("release not primed")
)

// candidates is how many of the newest releases a sweep's judgement looks
// at for each alias.
const candidates = 10

// Promoter judges and moves aliases.
type Promoter struct {
	Config   *config.Config
	Store    *store.Store
	Logger   *slog.Logger
	Observer observe.Observer
}

// Request asks about moving aliases to one release.
type Request struct {
	Release string
	// Alias, when set, is the one alias to judge; otherwise every one.
	Alias string
	// DryRun decides and moves nothing; Force moves even below the
	// threshold or to a release first primed before the current one.
	DryRun, Force bool
	// By is what asks: prime, sweep or command; RunID its run (0: none).
	By    string
	RunID int64
}

// Location is one location of a release's product, with its uptake.
type Location struct {
	ID   int    `json:"location_id"`
	OS   string `json:"os"`
	Path string `json:"path"`
	// EligibleAvailable of EligibleTotal: the ratings of the mirrors the
	// redirector can offer for the product that hold the location
	// verified, of all of them; Uptake their share (nil: none eligible).
	EligibleAvailable int64    `json:"eligible_available"`
	EligibleTotal     int64    `json:"eligible_total"`
	Uptake            *float64 `json:"eligible_uptake"`
	// Available and Total are the bouncer admin app's uptake.
	Available int64 `json:"available"`
	Total     int64 `json:"total"`
}

// Outcome is the judgement of one alias for a release.
type Outcome struct {
	Alias   string `json:"alias"`
	Release string `json:"release"`
	// Product is the release's product for the alias; From what the alias
	// named before ("" for none).
	Product string `json:"product"`
	From    string `json:"from"`
	// Moved: the alias names Product now, moved by this judgement at At.
	// WouldMove: a dry run that would have moved it. Already: it named
	// Product before.
	Moved     bool       `json:"moved"`
	WouldMove bool       `json:"would_move"`
	Already   bool       `json:"already"`
	Forced    bool       `json:"forced"`
	At        *time.Time `json:"moved_at,omitempty"`
	Why       string     `json:"why"`
	// MinUptake is the lowest eligible uptake of the product's
	// locations; PromoteAt the threshold.
	MinUptake *float64   `json:"min_uptake"`
	PromoteAt float64    `json:"promote_at"`
	Locations []Location `json:"locations"`
	// backwards: the release was first primed before the one the alias
	// names (a sweep looks no further).
	backwards bool
}

// Live reports whether the alias names the release's product after the
// judgement (or would, in a dry run).
func (o Outcome) Live() bool { return o.Moved || o.Already || o.WouldMove }

func (p *Promoter) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

// aliases are the aliases a request asks about, sorted.
func (p *Promoter) aliases(one string) ([]string, error) {
	all := p.Config.Releases.Aliases
	if len(all) == 0 {
		return nil, ErrNoAliases
	}
	if one != "" {
		if _, ok := all[one]; !ok {
			names := make([]string, 0, len(all))
			for a := range all {
				names = append(names, a)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("%w: %q is not one of releases.aliases (%s)", ErrUnknownAlias, one, strings.Join(names, ", "))
		}
		return []string{one}, nil
	}
	names := make([]string, 0, len(all))
	for a := range all {
		names = append(names, a)
	}
	sort.Strings(names)
	return names, nil
}

// Release judges the aliases asked for against the release's products,
// and moves those that are due (none in a dry run). An alias whose product
// the bouncer lacks is an outcome saying so, not an error.
func (p *Promoter) Release(ctx context.Context, req Request) ([]Outcome, error) {
	names, err := p.aliases(req.Alias)
	if err != nil {
		return nil, err
	}
	first, ok, err := store.ReleaseFirstPrime(ctx, p.Store.Pool(), req.Release)
	if err != nil {
		return nil, p.Store.Wrap("read the release's first prime", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: sentry never primed release %s (sentry prime --release %s)", ErrUnknownRelease, req.Release, req.Release)
	}
	out := make([]Outcome, 0, len(names))
	for _, a := range names {
		o, err := p.judge(ctx, a, req.Release, first, req)
		if err != nil {
			return out, err
		}
		out = append(out, o)
	}
	return out, nil
}

// Due moves every alias to the newest release sentry primed (master copy
// good) whose product is ready, looking at the newest few, newest first,
// and no further back than the release the alias names now: a sweep's
// judgement. It returns the moves made.
func (p *Promoter) Due(ctx context.Context, by string, runID int64) ([]Outcome, error) {
	names, err := p.aliases("")
	if errors.Is(err, ErrNoAliases) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rels, err := store.PrimedReleases(ctx, p.Store.Pool(), candidates)
	if err != nil {
		return nil, p.Store.Wrap("read the releases primed", err)
	}
	var moved []Outcome
	for _, a := range names {
		for _, r := range rels {
			o, err := p.judge(ctx, a, r.Name, r.FirstPrimed, Request{Release: r.Name, By: by, RunID: runID})
			if err != nil {
				return moved, err
			}
			if o.Moved {
				moved = append(moved, o)
			}
			if o.Live() || o.backwards {
				break
			}
		}
	}
	return moved, nil
}

// judge decides, and makes, the move of alias to release's product (first
// primed at first) in one transaction under the alias's lock: what it
// names now, the product's locations and their uptake are read there.
func (p *Promoter) judge(ctx context.Context, alias, release string, first time.Time, req Request) (Outcome, error) {
	cfg := p.Config
	o := Outcome{Alias: alias, Release: release, Product: cfg.AliasProduct(alias, release), PromoteAt: cfg.Releases.PromoteAt,
		Forced: req.Force, Locations: []Location{}}
	var ev *observe.AliasEvent
	err := pgx.BeginFunc(ctx, p.Store.Pool(), func(tx pgx.Tx) error {
		if err := store.LockAlias(ctx, tx, alias); err != nil {
			return err
		}
		cur, exists, err := store.AliasProduct(ctx, tx, alias)
		if err != nil {
			return err
		}
		o.From = cur
		target := decide.AliasTarget{Product: cur}
		if rel, ok := ReleaseOf(cfg.Releases.Aliases[alias], cur); ok {
			if target.FirstPrimed, target.Known, err = store.ReleaseFirstPrime(ctx, tx, rel); err != nil {
				return err
			}
		}
		ids, err := store.MatchNames(ctx, tx, "mirror_products", o.Product, false)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			o.Why = fmt.Sprintf("the bouncer has no product %s (mirror_products)", o.Product)
			return nil
		}
		locs, err := store.LocationUptakes(ctx, tx, ids, nil)
		if err != nil {
			return err
		}
		cand := decide.AliasCandidate{Product: o.Product, FirstPrimed: first}
		for _, l := range locs {
			loc := Location{ID: l.LocationID, OS: l.OS, Path: l.Path, EligibleAvailable: l.EligibleAvailable,
				EligibleTotal: l.EligibleTotal, Available: l.Available, Total: l.Total}
			if s, ok := l.Share(); ok {
				loc.Uptake = &s
			}
			o.Locations = append(o.Locations, loc)
			cand.Uptakes = append(cand.Uptakes, loc.Uptake)
		}
		d := decide.Promote(target, cand, cfg.Releases.PromoteAt, req.Force)
		o.Why, o.MinUptake, o.Already, o.backwards = d.Why, d.MinUptake, d.Already, d.Backwards
		if !d.Move {
			return nil
		}
		if req.DryRun {
			o.WouldMove = true
			return nil
		}
		by := req.By
		if by == "" {
			by = "command"
		}
		m := store.AliasMove{Alias: alias, From: cur, To: o.Product, Release: release, By: by, RunID: req.RunID,
			Forced: req.Force, MinUptake: d.MinUptake, Reason: d.Why}
		at, err := store.MoveAlias(ctx, tx, m, exists)
		if err != nil {
			return err
		}
		o.Moved, o.At = true, &at
		ev = &observe.AliasEvent{At: at, Alias: alias, From: cur, To: o.Product, Release: release, By: by, RunID: req.RunID,
			Forced: req.Force, MinUptake: d.MinUptake, Reason: d.Why}
		return nil
	})
	if err != nil {
		return o, p.Store.Wrap(fmt.Sprintf("judge alias %s for release %s", alias, release), err)
	}
	if ev != nil {
		p.log().Info("alias promoted: the release is live", "alias", alias, "from", ev.From, "to", ev.To, "release", release,
			"by", ev.By, "run", ev.RunID, "forced", ev.Forced, "why", ev.Reason)
		observe.AliasPromoted(observe.Or(p.Observer), *ev)
	}
	return o, nil
}

// ReleaseOf is the release that product is of by an alias's pattern
// (compared in any case, as the redirector compares product names): for
// "Firefox-{release}-SSL", "Firefox-1.5-SSL" is of 1.5.
func ReleaseOf(pattern, product string) (string, bool) {
	before, after, ok := strings.Cut(pattern, "{release}")
	if !ok || len(product) <= len(before)+len(after) {
		return "", false
	}
	lp := strings.ToLower(product)
	if !strings.HasPrefix(lp, strings.ToLower(before)) || !strings.HasSuffix(lp, strings.ToLower(after)) {
		return "", false
	}
	return product[len(before) : len(product)-len(after)], true
}

// Checker asks, after a run's marks, whether aliases are due, logging
// (not returning) what goes wrong: a promotion never fails the run.
type Checker struct {
	P *Promoter
}

// AfterMarks asks for the aliases of release, after a mirror's marks or a
// prime's judgement.
func (c Checker) AfterMarks(ctx context.Context, release, by string, runID int64) {
	if c.P == nil || len(c.P.Config.Releases.Aliases) == 0 || ctx.Err() != nil {
		return
	}
	if _, err := c.P.Release(ctx, Request{Release: release, By: by, RunID: runID}); err != nil && ctx.Err() == nil {
		c.P.log().Warn("could not judge the release's aliases; the next prime or sweep judges them again", "release", release, "err", err)
	}
}

// AfterSweep asks for every alias, after a sweep's judgement.
func (c Checker) AfterSweep(ctx context.Context, by string, runID int64) {
	if c.P == nil || len(c.P.Config.Releases.Aliases) == 0 || ctx.Err() != nil {
		return
	}
	if _, err := c.P.Due(ctx, by, runID); err != nil && ctx.Err() == nil {
		c.P.log().Warn("could not judge the aliases; the next sweep judges them again", "err", err)
	}
}
