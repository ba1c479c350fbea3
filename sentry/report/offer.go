package report

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// What the views say of what the deployed redirector makes of a mirror:
// whether it can offer it at all (a region row, a base URL of a scheme its
// filter matches), whether sentry ever verified it (and so vouches for
// its rows), and the language exceptions its admin wrote, which the
// redirector ignores.

// offerCols add to a query over mirror_mirrors m what settleOffer needs;
// offerScan reads them.
var offerCols = `, ` + store.HasRegionSQL("m") + `, EXISTS (SELECT 1 FROM sentry_mirror_verified v WHERE v.mirror_id = m.id)`

type offerScan struct {
	region, verified bool
}

func (o *offerScan) dest() []any { return []any{&o.region, &o.verified} }

// settleOffer fills the row's offer fields; after settle.
func (m *MirrorRow) settleOffer(o *offerScan) {
	if m.State == "disabled" {
		return
	}
	m.notOffered = decide.NeverOffered(true, o.region, m.BaseURL)
	m.NotOffered = m.notOffered.Explain(m.BaseURL, false)
	m.NeverVerified = !o.verified
}

// NotOfferedCode is why the redirector never offers the mirror, as a word
// for metrics labels: "no_region" or "wrong_scheme"; "" when it may.
func (m MirrorRow) NotOfferedCode() string {
	switch m.notOffered {
	case decide.NoRegion:
		return "no_region"
	case decide.WrongScheme:
		return "wrong_scheme"
	}
	return ""
}

// OfferNote is the views' line on what the redirector makes of an active
// mirror, "" when it is offered as sentry marks it: never offered (why),
// or never verified by sentry (its rows are off until it is).
func (m MirrorRow) OfferNote() string {
	var parts []string
	if m.NotOffered != "" {
		parts = append(parts, "never offered by the redirector: "+m.NotOffered)
	}
	if m.NeverVerified {
		parts = append(parts, decide.NeverVerified+": no row of it is offered until a file is verified there")
	}
	return strings.Join(parts, "; ")
}

// LangException is a language exception an admin wrote for a location on
// a mirror (mirror_lmm_lang_exceptions). The deployed redirector joins
// the table but never filters on it: the mirror is still sent requests in
// that language, so sentry checks the language like any other.
type LangException struct {
	LocationID int    `json:"location_id"`
	Path       string `json:"path"`
	Language   string `json:"language"`
}

// Note says what the exception does: nothing.
func (e LangException) Note() string {
	return "exception for " + e.Language + " on " + e.Path + " (ignored by the redirector: the language is checked)"
}

// langExceptions reads the language exceptions of a mirror, at most
// maxFailingFiles.
func langExceptions(ctx context.Context, tx pgx.Tx, mirrorID int) ([]LangException, error) {
	rows, err := tx.Query(ctx, `
		SELECT l.id, l.path, e.language FROM mirror_lmm_lang_exceptions e
		JOIN mirror_location_mirror_map lmm ON lmm.id = e.location_mirror_map_id
		JOIN mirror_locations l ON l.id = lmm.location_id
		WHERE lmm.mirror_id = $1 AND e.language IS NOT NULL
		ORDER BY l.path, e.language LIMIT $2`, mirrorID, maxFailingFiles)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LangException, error) {
		var e LangException
		err := row.Scan(&e.LocationID, &e.Path, &e.Language)
		return e, err
	})
	if out == nil {
		out = []LangException{}
	}
	return out, err
}
