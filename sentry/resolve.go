package sentry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/manifest"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// ErrManifest is wrapped by every error about reading a release's manifest:
// unreachable, too large, malformed, or naming files whose size the master
// will not tell. The command line maps it to exit code 1.
var ErrManifest = errors.New("release manifest unusable")

// ReleaseDir is the release directory of release, with a trailing slash.
func (c *Config) ReleaseDir(release string) string {
	d := strings.ReplaceAll(c.Releases.Dir, "{release}", release)
	if !strings.HasSuffix(d, "/") {
		d += "/"
	}
	return d
}

// ManifestURL is where release's manifest is read from.
func (c *Config) ManifestURL(release string) string {
	if strings.Contains(c.Releases.Manifest, "://") {
		return strings.ReplaceAll(c.Releases.Manifest, "{release}", url.PathEscape(release))
	}
	return primer.FileURL(c.Master.URL, c.ReleaseDir(release), c.Releases.Manifest)
}

// ProductNames are the bouncer product names of release.
func (c *Config) ProductNames(release string) []string {
	out := make([]string, len(c.Releases.Products))
	for i, p := range c.Releases.Products {
		out[i] = strings.ReplaceAll(p, "{release}", release)
	}
	return out
}

// plan is a resolved release: its files, and its bouncer locations with the
// files each stands for.
type plan struct {
	release     store.Release
	manifestURL string
	dir         string
	files       []primer.File
	locations   []planLocation
	// unresolved are locations that could not be mapped onto the manifest;
	// they are reported and never marked.
	unresolved      []Unresolved
	missingProducts []string
}

// planLocation is a bouncer location and the manifest files it stands for:
// one per language when its path holds ":lang".
type planLocation struct {
	ID      int
	Product string
	Path    string
	Files   []langFile
}

type langFile struct {
	Lang string // "" when the location has no :lang
	Path string // manifest path
}

// Unresolved is a bouncer location sentry cannot map onto the manifest.
type Unresolved struct {
	LocationID int    `json:"location_id"`
	Product    string `json:"product"`
	Path       string `json:"path"`
	Reason     string `json:"reason"`
}

// resolve reads release's manifest from the master, learns missing sizes
// from the master, records the release, and maps the release's bouncer
// locations onto the manifest.
func resolve(ctx context.Context, d *Deps, release string) (*plan, error) {
	cfg := d.Config
	p := &plan{manifestURL: cfg.ManifestURL(release), dir: cfg.ReleaseDir(release)}
	m, sum, err := fetchManifest(ctx, d, p.manifestURL)
	if err != nil {
		return nil, err
	}
	entries := m.Entries()
	if err := fillSizes(ctx, d, p.dir, entries); err != nil {
		return nil, err
	}
	files := make([]store.ReleaseFile, len(entries))
	p.files = make([]primer.File, len(entries))
	for i, e := range entries {
		files[i] = store.ReleaseFile{Path: e.Path, Size: e.Size, Algo: string(e.Algo), Hash: e.Hash}
		p.files[i] = primer.File{Path: e.Path, Size: e.Size, Algo: string(e.Algo), Hash: e.Hash}
	}
	if p.release, err = d.Store.SaveRelease(ctx, release, p.manifestURL, sum, files); err != nil {
		return nil, err
	}
	has := func(path string) bool { _, ok := m.Lookup(path); return ok }
	if err := p.mapLocations(ctx, d, has, release, false); err != nil {
		return nil, err
	}
	return p, nil
}

func fetchManifest(ctx context.Context, d *Deps, u string) (*manifest.Manifest, string, error) {
	body, res := checks.Fetch(ctx, d.Client, u, d.Config.Releases.MaxManifestBytes)
	if res.Kind != checks.KindOK {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", fmt.Errorf("%w: read %s: %s: %s", ErrManifest, u, res.Kind, res.Detail)
	}
	defer body.Close()
	h := sha256.New()
	m, err := manifest.Parse(io.TeeReader(body, h), u)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", fmt.Errorf("%w: %w", ErrManifest, err)
	}
	return m, hex.EncodeToString(h.Sum(nil)), nil
}

// fillSizes asks the master, by HEAD, for the size of every entry the
// manifest gives none for.
func fillSizes(ctx context.Context, d *Deps, dir string, entries []manifest.Entry) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range entries {
		if entries[i].Size >= 0 {
			continue
		}
		g.Go(func() error {
			e := &entries[i]
			u := primer.FileURL(d.Config.Master.URL, dir, e.Path)
			res := checks.Head(ctx, d.Client, checks.Target{URL: u, Size: -1})
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
// the manifest files (has tells whether a path is one), expanding ":lang".
// With activeOnly, inactive products are left out (sweeps check only what
// the redirector serves).
func (p *plan) mapLocations(ctx context.Context, d *Deps, has func(string) bool, release string, activeOnly bool) error {
	names := d.Config.ProductNames(release)
	products, err := d.Store.Products(ctx, names)
	if err != nil {
		return err
	}
	if activeOnly {
		kept := products[:0]
		for _, pr := range products {
			if pr.Active {
				kept = append(kept, pr)
			}
		}
		products = kept
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
			p.missingProducts = append(p.missingProducts, n)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	locs, err := d.Store.Locations(ctx, ids)
	if err != nil {
		return err
	}
	for _, l := range locs {
		pr := byID[l.ProductID]
		pl := planLocation{ID: l.ID, Product: pr.Name, Path: l.Path}
		rel, ok := strings.CutPrefix(l.Path, p.dir)
		if !ok {
			p.unresolved = append(p.unresolved, Unresolved{l.ID, pr.Name, l.Path,
				fmt.Sprintf("path is not under the release directory %s", p.dir)})
			continue
		}
		langs := []string{""}
		if strings.Contains(rel, ":lang") {
			langs = pr.Langs
			if len(langs) == 0 {
				langs = d.Config.Releases.DefaultLangs
			}
		}
		var missing []string
		for _, lang := range langs {
			fp := strings.ReplaceAll(rel, ":lang", lang)
			if !has(fp) {
				missing = append(missing, fp)
				continue
			}
			pl.Files = append(pl.Files, langFile{Lang: lang, Path: fp})
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			more := ""
			if len(missing) > 3 {
				more = fmt.Sprintf(" and %d more", len(missing)-3)
				missing = missing[:3]
			}
			p.unresolved = append(p.unresolved, Unresolved{l.ID, pr.Name, l.Path,
				fmt.Sprintf("not in the manifest: %s%s", strings.Join(missing, ", "), more)})
			continue
		}
		p.locations = append(p.locations, pl)
	}
	return nil
}
