package sweep

import (
	"context"
	"slices"
	"sync"

	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// set is what a sweep checks: the releases, their files behind active
// locations, and the locations.
type set struct {
	// withdrawn are the locations of active products whose files left
	// their release's manifest: taken off every mirror.
	withdrawn []release.Unresolved
	// respun are the locations of files whose manifest changed their size
	// or hash since the last sweep: off every mirror until verified again.
	respun []int
	// rejected are the releases whose manifest changed and was refused,
	// its signature not verifying: the known manifest stays in force.
	rejected   []release.Rejection
	releases   []*release.Plan
	releaseIDs []int64
	files      []file
	locations  []location
	exceptions map[[2]int][]string

	// listedNames are the files' names as an rsync listing gives them
	// (rsync.go), made once.
	listedOnce  sync.Once
	listedNames map[string]bool
}

// file is a release file behind an active location.
type file struct {
	key  store.FileKey
	file primer.File
	dir  string // the release directory
	// urlPath is its URL's path under a mirror's base URL
	// (primer.FilePath), escaped once for every mirror.
	urlPath string
}

// location is a location with the files it stands for.
type location struct {
	id    int
	files []langKey
}

type langKey struct {
	lang string
	file int // its index in set.files
}

// buildSet maps the locations of active products of every known release
// (of only those, when only is not nil) onto their manifests.
//
// With watch (the sweep's plan), the manifest of every release it covers is
// read again, conditionally: a release whose manifest changed is recorded
// anew (what was known of its changed files is forgotten, so this sweep
// hashes them), its files that changed are taken off every mirror until
// verified again there, and its files that left it are withdrawn.
func (j *Job) buildSet(ctx context.Context, only []int64, watch bool) (*set, error) {
	rels, err := j.Store.KnownReleases(ctx)
	if err != nil {
		return nil, err
	}
	r := &release.Resolver{Config: j.Config, Store: j.Store, Client: j.Client}
	s := &set{releaseIDs: []int64{}}
	at := map[store.FileKey]int{} // a file's index in s.files
	var locIDs []int
	for _, rel := range rels {
		if only != nil && !slices.Contains(only, rel.ID) {
			continue
		}
		p, err := r.Known(ctx, rel, true)
		if err != nil {
			return nil, err
		}
		if watch && (len(p.Locations) > 0 || len(p.Withdrawn()) > 0) {
			if p, err = j.watch(ctx, r, p, s); err != nil {
				return nil, err
			}
		}
		for _, u := range p.Unresolved {
			if u.Withdrawn {
				s.withdrawn = append(s.withdrawn, u)
			}
		}
		if len(p.Locations) == 0 {
			continue
		}
		s.releases = append(s.releases, p)
		s.releaseIDs = append(s.releaseIDs, rel.ID)
		byPath := make(map[string]primer.File, len(p.Files))
		for _, f := range p.Files {
			byPath[f.Path] = f
		}
		for _, l := range p.Locations {
			sl := location{id: l.ID}
			locIDs = append(locIDs, l.ID)
			for _, lf := range l.Files {
				k := store.FileKey{ReleaseID: rel.ID, Path: lf.Path}
				i, ok := at[k]
				if !ok {
					i = len(s.files)
					at[k] = i
					s.files = append(s.files, file{key: k, dir: p.Dir, file: byPath[lf.Path], urlPath: primer.FilePath(p.Dir, lf.Path)})
				}
				sl.files = append(sl.files, langKey{lang: lf.Lang, file: i})
			}
			s.locations = append(s.locations, sl)
		}
	}
	if s.exceptions, err = j.Store.LangExceptions(ctx, locIDs); err != nil {
		return nil, err
	}
	return s, nil
}

// watch reads a release's manifest again and, when it changed, returns
// the release's plan from the new one, with the locations of its respun
// files added to s.respun. A manifest that cannot be read (the master
// away, a malformed line) leaves the known one in force: the sweep goes on.
// So does a changed manifest whose signature does not verify
// (releases.signature), which is added to s.rejected.
func (j *Job) watch(ctx context.Context, r *release.Resolver, p *release.Plan, s *set) (*release.Plan, error) {
	rel, err := r.Refresh(ctx, p.Release)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if rj, ok := release.Rejected(p.Release.Name, err); ok {
			j.Logger.Error("the release's manifest changed and its signature is refused; sweeping by the known one, nothing of the new one used",
				"release", p.Release.Name, "err", err)
			s.rejected = append(s.rejected, rj)
			return p, nil
		}
		j.Logger.Warn("could not read the release's manifest again; sweeping by the known one", "release", p.Release.Name, "err", err)
		return p, nil
	}
	if !rel.Changed {
		return p, nil
	}
	j.Logger.Warn("the release's manifest changed", "release", rel.Name, "respun_files", len(rel.Respun))
	np, err := r.Known(ctx, rel, true)
	if err != nil {
		return nil, err
	}
	s.respun = append(s.respun, np.LocationsOf(rel.Respun)...)
	return np, nil
}
