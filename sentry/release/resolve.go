// Package release resolves a release: it checks the release's name
// (name.go), reads the release's checksum manifest from the master, learns
// the sizes the manifest lacks, reads the master's copy of every file once
// per contents, checked against the manifest and digested by block
// (digests.go), records the manifest, and maps the release's bouncer
// locations onto its files (docs/CONTRACTS.md, sections 2 and 4), failing
// a run that would check nothing (coverage.go). It also answers whether
// the master is reachable, which the mass-failure guard asks (master.go).
package release

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/manifest"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// ErrManifest is wrapped by every error about reading a release's manifest:
// unreachable, too large, malformed, or naming files whose size the master
// will not tell. The command line maps it to exit code 1.
var ErrManifest = errors.New("release manifest unusable")

// Plan is a resolved release: its files, and its bouncer locations with
// the files each stands for.
type Plan struct {
	Release     store.Release
	ManifestURL string
	// Dir is the release directory, with a trailing slash.
	Dir       string
	Files     []primer.File
	Locations []Location
	// Unresolved are locations that could not be mapped onto the
	// manifest; they are reported and never marked.
	Unresolved []Unresolved
	// MissingProducts are product names of the release's patterns that
	// the bouncer has no product of.
	MissingProducts []string
}

// Location is a bouncer location and the manifest files it stands for:
// one per language when its path holds ":lang".
type Location struct {
	ID      int
	Product string
	Path    string
	Files   []LangFile
}

// LangFile is one file a location stands for.
type LangFile struct {
	Lang string // "" when the location has no :lang
	Path string // manifest path
}

// Unresolved is a bouncer location sentry cannot map onto the manifest.
type Unresolved struct {
	LocationID int    `json:"location_id"`
	Product    string `json:"product"`
	Path       string `json:"path"`
	Reason     string `json:"reason"`
	// Withdrawn: the location's files (some of them) are not in the
	// manifest, so no mirror can hold it: it is taken off every mirror.
	// Otherwise (a path outside the release directory) it is left alone.
	Withdrawn bool `json:"withdrawn"`
}

// LocationIDs are the ids of the plan's locations.
func (p *Plan) LocationIDs() []int {
	ids := make([]int, len(p.Locations))
	for i, l := range p.Locations {
		ids[i] = l.ID
	}
	return ids
}

// Resolver resolves releases.
type Resolver struct {
	Config *config.Config
	Store  *store.Store
	Client *checks.Client
}

// Resolve reads release's manifest from the master, learns missing sizes
// from the master, reads every file from the master once to check it and
// digest its blocks (digests.go), records the release, and maps the
// release's bouncer locations onto the manifest.
func (r *Resolver) Resolve(ctx context.Context, name string) (*Plan, error) {
	cfg := r.Config
	p := &Plan{ManifestURL: cfg.ManifestURL(name), Dir: cfg.ReleaseDir(name)}
	m, res, err := r.fetchManifest(ctx, name, store.Release{})
	if err != nil {
		return nil, err
	}
	if p.Release, err = r.save(ctx, name, p, m, res); err != nil {
		return nil, err
	}
	if err := r.mapLocations(ctx, p, false); err != nil {
		return nil, err
	}
	if r.Config.Verify.Sampled() {
		if err := r.AttachDigests(ctx, p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// save records a fetched manifest (its sizes learnt from the master where
// it gives none, its files checked and block-digested on the master) as
// release name's, and fills p's files.
func (r *Resolver) save(ctx context.Context, name string, p *Plan, m *fetched, res checks.Result) (store.Release, error) {
	entries := m.manifest.Entries()
	if err := r.fillSizes(ctx, p.Dir, entries); err != nil {
		return store.Release{}, err
	}
	// Before anything is written: a master copy that is not the
	// manifest's makes the release unusable.
	if err := r.digestMaster(ctx, name, p.Dir, entries); err != nil {
		return store.Release{}, err
	}
	files := make([]store.ReleaseFile, len(entries))
	for i, e := range entries {
		files[i] = store.ReleaseFile{Path: e.Path, Size: e.Size, Algo: string(e.Algo), Hash: e.Hash}
	}
	rel, err := r.Store.SaveRelease(ctx, name, p.ManifestURL, m.sum, files,
		store.ManifestValidators{ETag: res.ETag, LastModified: res.LastModified, Signer: m.signer})
	if err != nil {
		return store.Release{}, err
	}
	// The previous hashes are the store's: read the files back.
	saved, err := r.Store.ReleaseFiles(ctx, rel.ID)
	if err != nil {
		return store.Release{}, err
	}
	p.Files = primerFiles(saved)
	return rel, nil
}

func primerFiles(files []store.ReleaseFile) []primer.File {
	out := make([]primer.File, len(files))
	for i, f := range files {
		out[i] = primer.File{Path: f.Path, Size: f.Size, Algo: f.Algo, Hash: f.Hash, PreviousHash: f.PreviousHash}
	}
	return out
}

// Refresh reads a known release's manifest again, conditionally (the
// validators the master gave last time): when the master says it changed
// and its contents did, the new manifest is recorded (store.SaveRelease:
// what was known of changed or removed files is forgotten). It returns the
// release as now recorded (Changed, Respun: the files whose size or hash
// changed).
func (r *Resolver) Refresh(ctx context.Context, rel store.Release) (store.Release, error) {
	p := &Plan{ManifestURL: r.Config.ManifestURL(rel.Name), Dir: r.Config.ReleaseDir(rel.Name)}
	m, res, err := r.fetchManifest(ctx, rel.Name, rel)
	if err != nil || m == nil {
		return rel, err
	}
	if rel.ManifestSHA256 != "" && m.sum == rel.ManifestSHA256 {
		// The same bytes (a master without validators, or new ones):
		// nothing to learn from the master again.
		err := r.Store.SetManifestValidators(ctx, rel.ID, store.ManifestValidators{ETag: res.ETag, LastModified: res.LastModified,
			Signer: m.signer})
		return rel, err
	}
	return r.save(ctx, rel.Name, p, m, res)
}

// Known maps a release sentry has the manifest of onto its locations, from
// the recorded manifest. With activeOnly, inactive products are left out
// (sweeps check only what the redirector serves).
func (r *Resolver) Known(ctx context.Context, rel store.Release, activeOnly bool) (*Plan, error) {
	files, err := r.Store.ReleaseFiles(ctx, rel.ID)
	if err != nil {
		return nil, err
	}
	p := &Plan{Release: rel, ManifestURL: r.Config.ManifestURL(rel.Name), Dir: r.Config.ReleaseDir(rel.Name)}
	p.Files = primerFiles(files)
	if err := r.mapLocations(ctx, p, activeOnly); err != nil {
		return nil, err
	}
	return p, nil
}

// ManifestError is an ErrManifest that says whether the master could not
// be read (Kind: the failure kind of the GET) or what it served is not a
// usable manifest (Kind ok).
type ManifestError struct {
	URL  string
	Kind checks.Kind
	Err  error
}

func (e *ManifestError) Error() string { return e.Err.Error() }

// Unwrap gives ErrManifest and the cause.
func (e *ManifestError) Unwrap() []error { return []error{ErrManifest, e.Err} }

// ReadManifest reads and parses release's manifest from the master,
// writing nothing: whether the master has the release (the release hook
// asks before it starts a prime). Its error is a *ManifestError.
func (r *Resolver) ReadManifest(ctx context.Context, name string) error {
	_, _, err := r.fetchManifest(ctx, name, store.Release{})
	return err
}

// fetched is a manifest as read from the master, with its SHA-256 and,
// when manifests are signed, who signed it.
type fetched struct {
	manifest *manifest.Manifest
	sum      string
	signer   store.ManifestSigner
}

// fetchManifest reads and parses release name's manifest, conditionally on
// the validators known of rel's (none for a new release): a nil manifest
// with no error means it did not change. With releases.signature, the
// signature is verified before any entry is used (signed.go). Its error
// is a *ManifestError, or the context's.
func (r *Resolver) fetchManifest(ctx context.Context, name string, rel store.Release) (*fetched, checks.Result, error) {
	u := r.Config.ManifestURL(name)
	body, res := checks.FetchIfChanged(ctx, r.Client, u, r.Config.Releases.MaxManifestBytes, rel.ManifestETag, rel.ManifestLastModified)
	if res.Kind == checks.KindUnchanged {
		return nil, res, nil
	}
	if res.Kind != checks.KindOK {
		if ctx.Err() != nil {
			return nil, res, ctx.Err()
		}
		return nil, res, &ManifestError{URL: u, Kind: res.Kind,
			Err: fmt.Errorf("%w: read %s: %s: %s", ErrManifest, u, res.Kind, res.Detail)}
	}
	defer body.Close()
	m, err := r.readManifest(ctx, name, u, body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, res, ctx.Err()
		}
		var me *ManifestError
		if errors.As(err, &me) {
			return nil, res, me
		}
		return nil, res, &ManifestError{URL: u, Kind: checks.KindOK, Err: fmt.Errorf("%w: %w", ErrManifest, err)}
	}
	return m, res, nil
}

// fillSizes asks the master, by HEAD, for the size of every entry the
// manifest gives none for.
func (r *Resolver) fillSizes(ctx context.Context, dir string, entries []manifest.Entry) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range entries {
		if entries[i].Size >= 0 {
			continue
		}
		g.Go(func() error {
			e := &entries[i]
			u := primer.FileURL(r.Config.Master.URL, dir, e.Path)
			res := checks.Head(ctx, r.Client, checks.Target{URL: u, Size: -1})
			if res.Kind != checks.KindOK || res.Bytes < 0 {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				why := res.Detail
				if res.Kind == checks.KindOK {
					why = "no Content-Length"
				}
				return fmt.Errorf("%w: the manifest gives no size for %s and the master does not tell it (%s: %s)",
					ErrManifest, e.Path, res.Kind, why)
			}
			e.Size = res.Bytes
			return nil
		})
	}
	return g.Wait()
}

// mapLocations finds the release's products and maps each location onto
// the manifest's files, expanding ":lang" (docs/CONTRACTS.md, section 2):
// to the product's languages; for a product with none, to every language
// for which the manifest holds the path (the redirector serves any
// language it is asked for), or releases.default_langs when it holds none.
// A location whose files are not all in the manifest is withdrawn: no
// mirror can hold it.
func (r *Resolver) mapLocations(ctx context.Context, p *Plan, activeOnly bool) error {
	names := r.Config.ProductNames(p.Release.Name)
	products, err := r.Store.Products(ctx, names)
	if err != nil {
		return err
	}
	if activeOnly {
		products = slices.DeleteFunc(products, func(pr store.Product) bool { return !pr.Active })
	}
	found := map[string]bool{}
	byID := map[int]store.Product{}
	ids := make([]int, 0, len(products))
	for _, pr := range products {
		found[pr.Name] = true
		byID[pr.ID] = pr
		ids = append(ids, pr.ID)
	}
	for _, n := range names {
		if !found[n] {
			p.MissingProducts = append(p.MissingProducts, n)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	locs, err := r.Store.Locations(ctx, ids)
	if err != nil {
		return err
	}
	paths := make(map[string]bool, len(p.Files))
	for _, f := range p.Files {
		paths[f.Path] = true
	}
	for _, l := range locs {
		pr := byID[l.ProductID]
		pl := Location{ID: l.ID, Product: pr.Name, Path: l.Path}
		rel, ok := strings.CutPrefix(l.Path, p.Dir)
		if !ok {
			p.Unresolved = append(p.Unresolved, Unresolved{l.ID, pr.Name, l.Path,
				fmt.Sprintf("path is not under the release directory %s", p.Dir), false})
			continue
		}
		langs := []string{""}
		if strings.Contains(rel, ":lang") {
			langs = pr.Langs
			if len(langs) == 0 {
				langs = manifestLangs(rel, paths)
			}
			if len(langs) == 0 {
				langs = r.Config.Releases.DefaultLangs
			}
		}
		var missing []string
		for _, lang := range langs {
			fp := strings.ReplaceAll(rel, ":lang", lang)
			if !paths[fp] {
				missing = append(missing, fp)
				continue
			}
			pl.Files = append(pl.Files, LangFile{Lang: lang, Path: fp})
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			more := ""
			if len(missing) > 3 {
				more = fmt.Sprintf(" and %d more", len(missing)-3)
				missing = missing[:3]
			}
			p.Unresolved = append(p.Unresolved, Unresolved{l.ID, pr.Name, l.Path,
				fmt.Sprintf("withdrawn: not in the manifest: %s%s", strings.Join(missing, ", "), more), true})
			continue
		}
		p.Locations = append(p.Locations, pl)
	}
	return nil
}

// manifestLangs are the languages for which the manifest holds the path
// rel (with ":lang", once or more, for the language), sorted.
func manifestLangs(rel string, paths map[string]bool) []string {
	parts := strings.Split(rel, ":lang")
	var out []string
	for path := range paths {
		if lang, ok := langOf(path, parts); ok {
			out = append(out, lang)
		}
	}
	sort.Strings(out)
	return out
}

// langOf matches path against the parts of a location's path around its
// ":lang"s and returns the one language they stand for: a non-empty path
// segment's worth of text, the same at every ":lang".
func langOf(path string, parts []string) (string, bool) {
	rest, ok := strings.CutPrefix(path, parts[0])
	if !ok {
		return "", false
	}
	lang := ""
	for i, part := range parts[1:] {
		// The language runs to the next part (the last part ends the path).
		var end int
		if i == len(parts)-2 {
			if !strings.HasSuffix(rest, part) {
				return "", false
			}
			end = len(rest) - len(part)
		} else if end = strings.Index(rest, part); end < 0 || part == "" {
			return "", false
		}
		l := rest[:end]
		if l == "" || strings.Contains(l, "/") || (lang != "" && l != lang) {
			return "", false
		}
		lang, rest = l, rest[end+len(part):]
	}
	return lang, rest == ""
}

// LocationsOf are the ids of the plan's locations that stand for any of
// the manifest paths given.
func (p *Plan) LocationsOf(paths []string) []int {
	want := make(map[string]bool, len(paths))
	for _, path := range paths {
		want[path] = true
	}
	var ids []int
	for _, l := range p.Locations {
		for _, f := range l.Files {
			if want[f.Path] {
				ids = append(ids, l.ID)
				break
			}
		}
	}
	return ids
}

// Withdrawn are the ids of the plan's withdrawn locations.
func (p *Plan) Withdrawn() []int {
	var ids []int
	for _, u := range p.Unresolved {
		if u.Withdrawn {
			ids = append(ids, u.LocationID)
		}
	}
	return ids
}
