// Package factory inserts the bouncer's rows for tests: mirrors (with
// their regions and sentry's settings), products, operating systems,
// locations, product languages, aliases and location marks.
//
// Each function takes a context, the test, an Executor (a *pgxpool.Pool,
// a *pgx.Conn or a pgx.Tx) and an *Opts struct whose fields override the
// defaults: a nil pointer, an empty string or a nil slice means "the
// default" (the column's own, or a name made unique in the process). It
// inserts one row, fails the test when it cannot, and returns the row as
// inserted:
//
//	m := factory.Mirror(ctx, t, pool, &factory.MirrorOpts{Name: "good", BaseURL: s.URL, Regions: []int{1}})
//	factory.MirrorSettings(ctx, t, pool, &factory.MirrorSettingsOpts{MirrorID: m.ID, PrimeMode: "trigger", TriggerURL: u})
//
// In the spirit of River's testfactory (riverqueue/river,
// internal/riverinternaltest/testfactory). The tables are DESIGN.md's
// section 2 and sentry_mirror_settings (section 3 and the migrations).
package factory

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Executor runs statements: *pgxpool.Pool, *pgx.Conn and pgx.Tx are
// Executors.
type Executor interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// seq numbers the default names, unique within the process.
var seq atomic.Int64

func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

// or returns v, or def when v is the zero value.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// orPtr returns *p, or def when p is nil.
func orPtr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// Ptr returns a pointer to v, for the Opts fields that are pointers.
func Ptr[T any](v T) *T { return &v }

// MirrorOpts are a mirror_mirrors row's columns; zero means the default.
type MirrorOpts struct {
	Name    string // default: mirror-N
	BaseURL string // default: http://NAME.example.org/pub
	Rating  *int   // default: 0 (the column's)
	Active  *bool  // default: true
	// Regions are region ids the mirror is in (geoip_mirror_region_map
	// rows, one each). The redirector offers a mirror only with a region
	// (an inner join); default: none.
	Regions []int
	// Settings, when set, is its sentry_mirror_settings row (MirrorID is
	// filled in).
	Settings *MirrorSettingsOpts
}

// MirrorRow is an inserted mirror.
type MirrorRow struct {
	ID      int
	Name    string
	BaseURL string
	Rating  int
	Active  bool
}

// Mirror inserts a mirror (its regions and settings when opts says so).
func Mirror(ctx context.Context, tb testing.TB, exec Executor, opts *MirrorOpts) *MirrorRow {
	tb.Helper()
	if opts == nil {
		opts = &MirrorOpts{}
	}
	name := or(opts.Name, unique("mirror"))
	m := &MirrorRow{}
	if err := exec.QueryRow(ctx, `INSERT INTO mirror_mirrors (name, baseurl, rating, active) VALUES ($1, $2, $3, $4)
		RETURNING id, name, baseurl, rating, active`,
		name, or(opts.BaseURL, "http://"+name+".example.org/pub"), orPtr(opts.Rating, 0), orPtr(opts.Active, true)).
		Scan(&m.ID, &m.Name, &m.BaseURL, &m.Rating, &m.Active); err != nil {
		tb.Fatalf("factory: mirror %q: %v", name, err)
	}
	for _, r := range opts.Regions {
		RegionMap(ctx, tb, exec, &RegionMapOpts{MirrorID: m.ID, RegionID: r})
	}
	if opts.Settings != nil {
		s := *opts.Settings
		s.MirrorID = m.ID
		MirrorSettings(ctx, tb, exec, &s)
	}
	return m
}

// RegionMapOpts are a geoip_mirror_region_map row's columns.
type RegionMapOpts struct {
	MirrorID int // required
	RegionID int // default: 1
}

// RegionMapRow is an inserted geoip_mirror_region_map row.
type RegionMapRow struct {
	ID, MirrorID, RegionID int
}

// RegionMap puts a mirror in a region.
func RegionMap(ctx context.Context, tb testing.TB, exec Executor, opts *RegionMapOpts) *RegionMapRow {
	tb.Helper()
	r := &RegionMapRow{}
	if err := exec.QueryRow(ctx, `INSERT INTO geoip_mirror_region_map (mirror_id, region_id) VALUES ($1, $2)
		RETURNING id, mirror_id, region_id`, opts.MirrorID, or(opts.RegionID, 1)).Scan(&r.ID, &r.MirrorID, &r.RegionID); err != nil {
		tb.Fatalf("factory: region of mirror %d: %v", opts.MirrorID, err)
	}
	return r
}

// MirrorSettingsOpts are a sentry_mirror_settings row's columns; an empty
// string or a nil pointer is NULL (or the column's default).
type MirrorSettingsOpts struct {
	MirrorID       int    // required (filled in by Mirror)
	PrimeMode      string // pull (default), trigger, passive
	TriggerURL     string
	MaxConcurrency *int
	MaxRate        *float64
	RsyncURL       string
	PurgeMethod    string
	PurgeURL       string
	Contact        string
}

// MirrorSettings inserts a mirror's sentry_mirror_settings row.
func MirrorSettings(ctx context.Context, tb testing.TB, exec Executor, opts *MirrorSettingsOpts) {
	tb.Helper()
	if _, err := exec.Exec(ctx, `INSERT INTO sentry_mirror_settings
		(mirror_id, prime_mode, trigger_url, max_concurrency, max_rate, rsync_url, purge_method, purge_url, contact)
		VALUES ($1, $2, nullif($3, ''), $4, $5, nullif($6, ''), nullif($7, ''), nullif($8, ''), nullif($9, ''))`,
		opts.MirrorID, or(opts.PrimeMode, "pull"), opts.TriggerURL, opts.MaxConcurrency, opts.MaxRate,
		opts.RsyncURL, opts.PurgeMethod, opts.PurgeURL, opts.Contact); err != nil {
		tb.Fatalf("factory: settings of mirror %d: %v", opts.MirrorID, err)
	}
}

// ProductOpts are a mirror_products row's columns.
type ProductOpts struct {
	Name    string // default: product-N
	Active  *bool  // default: true
	SSLOnly *bool  // default: false
	// Langs are its mirror_product_langs rows. None: the redirector
	// serves any language.
	Langs []string
}

// ProductRow is an inserted product.
type ProductRow struct {
	ID   int
	Name string
}

// Product inserts a product and its languages.
func Product(ctx context.Context, tb testing.TB, exec Executor, opts *ProductOpts) *ProductRow {
	tb.Helper()
	if opts == nil {
		opts = &ProductOpts{}
	}
	name := or(opts.Name, unique("product"))
	p := &ProductRow{}
	if err := exec.QueryRow(ctx, `INSERT INTO mirror_products (name, active, ssl_only) VALUES ($1, $2, $3) RETURNING id, name`,
		name, orPtr(opts.Active, true), orPtr(opts.SSLOnly, false)).Scan(&p.ID, &p.Name); err != nil {
		tb.Fatalf("factory: product %q: %v", name, err)
	}
	for _, l := range opts.Langs {
		ProductLang(ctx, tb, exec, &ProductLangOpts{ProductID: p.ID, Language: l})
	}
	return p
}

// ProductLangOpts are a mirror_product_langs row's columns.
type ProductLangOpts struct {
	ProductID int    // required
	Language  string // required
}

// ProductLang adds a language to a product.
func ProductLang(ctx context.Context, tb testing.TB, exec Executor, opts *ProductLangOpts) {
	tb.Helper()
	if _, err := exec.Exec(ctx, `INSERT INTO mirror_product_langs (product_id, language) VALUES ($1, $2)`,
		opts.ProductID, opts.Language); err != nil {
		tb.Fatalf("factory: language %q of product %d: %v", opts.Language, opts.ProductID, err)
	}
}

// OSOpts are a mirror_os row's columns.
type OSOpts struct {
	Name string // default: os-N
}

// OSRow is an inserted operating system.
type OSRow struct {
	ID   int
	Name string
}

// OS inserts an operating system.
func OS(ctx context.Context, tb testing.TB, exec Executor, opts *OSOpts) *OSRow {
	tb.Helper()
	if opts == nil {
		opts = &OSOpts{}
	}
	name := or(opts.Name, unique("os"))
	o := &OSRow{}
	if err := exec.QueryRow(ctx, `INSERT INTO mirror_os (name) VALUES ($1) RETURNING id, name`, name).Scan(&o.ID, &o.Name); err != nil {
		tb.Fatalf("factory: os %q: %v", name, err)
	}
	return o
}

// LocationOpts are a mirror_locations row's columns.
type LocationOpts struct {
	ProductID int    // default: a new product
	OSID      int    // default: a new operating system
	Path      string // required: leading '/', may hold ":lang"
}

// LocationRow is an inserted location.
type LocationRow struct {
	ID, ProductID, OSID int
	Path                string
}

// Location inserts a location (and its product and operating system, when
// opts names none).
func Location(ctx context.Context, tb testing.TB, exec Executor, opts *LocationOpts) *LocationRow {
	tb.Helper()
	if opts.Path == "" {
		tb.Fatal("factory: a location needs a path")
	}
	product, os := opts.ProductID, opts.OSID
	if product == 0 {
		product = Product(ctx, tb, exec, nil).ID
	}
	if os == 0 {
		os = OS(ctx, tb, exec, nil).ID
	}
	l := &LocationRow{}
	if err := exec.QueryRow(ctx, `INSERT INTO mirror_locations (product_id, os_id, path) VALUES ($1, $2, $3)
		RETURNING id, product_id, os_id, path`, product, os, opts.Path).Scan(&l.ID, &l.ProductID, &l.OSID, &l.Path); err != nil {
		tb.Fatalf("factory: location %q: %v", opts.Path, err)
	}
	return l
}

// AliasOpts are a mirror_aliases row's columns.
type AliasOpts struct {
	Alias          string // default: alias-N
	RelatedProduct string // required: the product's name
}

// Alias names a product by an alias (firefox-latest → Firefox-1.5).
func Alias(ctx context.Context, tb testing.TB, exec Executor, opts *AliasOpts) {
	tb.Helper()
	alias := or(opts.Alias, unique("alias"))
	if _, err := exec.Exec(ctx, `INSERT INTO mirror_aliases (alias, related_product) VALUES ($1, $2)`,
		alias, opts.RelatedProduct); err != nil {
		tb.Fatalf("factory: alias %q: %v", alias, err)
	}
}

// LocationMirrorOpts are a mirror_location_mirror_map row's columns.
type LocationMirrorOpts struct {
	LocationID int   // required
	MirrorID   int   // required
	Active     *bool // default: false (the column's)
	Healthy    *bool // default: true (the column's)
}

// LocationMirror inserts a location's mark on a mirror, as a redirector's
// database holds it before sentry (or an earlier run) wrote it, and
// returns the row's id (what mirror_lmm_lang_exceptions rows name).
func LocationMirror(ctx context.Context, tb testing.TB, exec Executor, opts *LocationMirrorOpts) int64 {
	tb.Helper()
	var id int64
	if err := exec.QueryRow(ctx, `INSERT INTO mirror_location_mirror_map (location_id, mirror_id, active, healthy)
		VALUES ($1, $2, $3, $4) RETURNING id`, opts.LocationID, opts.MirrorID, orPtr(opts.Active, false), orPtr(opts.Healthy, true)).
		Scan(&id); err != nil {
		tb.Fatalf("factory: mark of location %d on mirror %d: %v", opts.LocationID, opts.MirrorID, err)
	}
	return id
}

// LangExceptionOpts are a mirror_lmm_lang_exceptions row's columns.
type LangExceptionOpts struct {
	// LocationMirrorID is the mirror_location_mirror_map row it is for;
	// when 0, the row of (LocationID, MirrorID), made (inactive) when
	// there is none.
	LocationMirrorID     int64
	LocationID, MirrorID int
	Language             string // required
}

// LangException records an admin's language exception for a location on
// a mirror. The deployed redirectors join it but never filter on it.
func LangException(ctx context.Context, tb testing.TB, exec Executor, opts *LangExceptionOpts) {
	tb.Helper()
	lmm := opts.LocationMirrorID
	if lmm == 0 {
		if err := exec.QueryRow(ctx, `INSERT INTO mirror_location_mirror_map (location_id, mirror_id) VALUES ($1, $2)
			ON CONFLICT (location_id, mirror_id) DO UPDATE SET location_id = excluded.location_id RETURNING id`,
			opts.LocationID, opts.MirrorID).Scan(&lmm); err != nil {
			tb.Fatalf("factory: row of location %d on mirror %d: %v", opts.LocationID, opts.MirrorID, err)
		}
	}
	if _, err := exec.Exec(ctx, `INSERT INTO mirror_lmm_lang_exceptions (location_mirror_map_id, language) VALUES ($1, $2)`,
		lmm, opts.Language); err != nil {
		tb.Fatalf("factory: exception %q of row %d: %v", opts.Language, lmm, err)
	}
}

// MirrorVerifiedOpts are a sentry_mirror_verified row's columns.
type MirrorVerifiedOpts struct {
	MirrorID int // required
}

// MirrorVerified records that sentry verified a file on the mirror
// before (sentry_mirror_verified, at now()): the rows it finds active
// there are its own, kept when the mirror goes down (decide.Vouch). A
// mirror without this row is one sentry never verified anything on.
func MirrorVerified(ctx context.Context, tb testing.TB, exec Executor, opts *MirrorVerifiedOpts) {
	tb.Helper()
	if _, err := exec.Exec(ctx, `INSERT INTO sentry_mirror_verified (mirror_id, first_verified_at) VALUES ($1, now())`,
		opts.MirrorID); err != nil {
		tb.Fatalf("factory: mirror %d verified: %v", opts.MirrorID, err)
	}
}
