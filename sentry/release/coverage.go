package release

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// ErrNothingToDo is wrapped by the errors of a prime or sweep that would
// check nothing the redirector serves: no bouncer product matches the
// release's patterns, the products have no locations, no location maps
// onto the manifest, or no mirror is active. Such a run fails before any
// mirror is contacted (docs/CONTRACTS.md, section 4): done, it would
// report success after checking nothing.
var ErrNothingToDo = errors.New("nothing to check")

// maxNamed bounds the names an error lists.
const maxNamed = 5

// CheckProducts makes sure, before the manifest is read, that the
// release's product patterns match bouncer products and that these have
// locations; its error names the patterns and what the bouncer holds.
func (r *Resolver) CheckProducts(ctx context.Context, name string) error {
	names := r.Config.ProductNames(name)
	products, err := r.Store.Products(ctx, names)
	if err != nil {
		return err
	}
	if len(products) == 0 {
		have, total, err := r.Store.ProductNames(ctx, maxNamed)
		if err != nil {
			return err
		}
		holds := "no product at all"
		switch {
		case total == 1:
			holds = "1 product: " + listed(have, total)
		case total > 1:
			holds = fmt.Sprintf("%d products: %s", total, listed(have, total))
		}
		return fmt.Errorf("%w: release %s matches no bouncer product: releases.products %s gives %s, and mirror_products "+
			"has none of them (it holds %s)", ErrNothingToDo, name, quoted(r.Config.Releases.Products), quoted(names), holds)
	}
	ids := make([]int, len(products))
	found := make([]string, len(products))
	for i, p := range products {
		ids[i], found[i] = p.ID, p.Name
	}
	locs, err := r.Store.Locations(ctx, ids)
	if err != nil {
		return err
	}
	if len(locs) == 0 {
		return fmt.Errorf("%w: the bouncer products of release %s (%s) have no mirror_locations rows", ErrNothingToDo, name,
			strings.Join(found, ", "))
	}
	return nil
}

// CheckLocations makes sure that at least one of the plan's locations maps
// onto the manifest; its error says why the first ones do not.
func (p *Plan) CheckLocations() error {
	if len(p.Locations) > 0 {
		return nil
	}
	if len(p.Unresolved) == 0 {
		return fmt.Errorf("%w: release %s has no bouncer location", ErrNothingToDo, p.Release.Name)
	}
	var why []string
	for i, u := range p.Unresolved {
		if i == 2 {
			why = append(why, fmt.Sprintf("and %d more", len(p.Unresolved)-2))
			break
		}
		why = append(why, fmt.Sprintf("location %d %s: %s", u.LocationID, u.Path, u.Reason))
	}
	return fmt.Errorf("%w: none of the %d locations of release %s maps onto its manifest (%s)", ErrNothingToDo,
		len(p.Unresolved), p.Release.Name, strings.Join(why, "; "))
}

// Covered keeps the active mirrors a run is restricted to (`--mirror NAME`;
// all when names is empty). No active mirror at all is nothing to do; a
// name that is not an active mirror's is an error naming the active ones.
func Covered(active []store.Mirror, names []string) ([]store.Mirror, error) {
	if len(active) == 0 {
		return nil, fmt.Errorf("%w: no active mirror (mirror_mirrors.active, the admin's switch)", ErrNothingToDo)
	}
	all := make([]string, len(active))
	for i, m := range active {
		all[i] = m.Name
	}
	idx, err := decide.Named(all, names)
	if err != nil {
		return nil, err
	}
	out := make([]store.Mirror, len(idx))
	for i, k := range idx {
		out[i] = active[k]
	}
	return out, nil
}

// listed lists names, saying how many more there are of total.
func listed(names []string, total int) string {
	s := strings.Join(names, ", ")
	if total > len(names) {
		s += fmt.Sprintf(" and %d more", total-len(names))
	}
	return s
}

func quoted(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
