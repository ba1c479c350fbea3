package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/internal/bench/loadfarm"
	"github.com/mirrorsentry/sentry/sentry/manifest"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// product is the bouncer product name of a farm release.
func product(rel string) string { return "Bench-" + rel }

// seed inserts the bouncer rows of a farm: its mirrors (inactive; each
// scenario switches on the ones it uses), one product per release with the
// release's languages and locations. It returns the mirror ids in farm
// order.
func seed(ctx context.Context, st *store.Store, prefix string, farm loadfarm.Info, rels []loadfarm.ReleaseSpec) ([]int, error) {
	var ids []int
	err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO mirror_os (name) VALUES ('bench') ON CONFLICT DO NOTHING`); err != nil {
			return err
		}
		for i, base := range farm.Mirrors {
			var id int
			if err := tx.QueryRow(ctx, `INSERT INTO mirror_mirrors (name, baseurl, rating, active) VALUES ($1, $2, 10, false) RETURNING id`,
				fmt.Sprintf("%s%03d", prefix, i), base).Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		for _, r := range rels {
			var pid int
			if err := tx.QueryRow(ctx, `INSERT INTO mirror_products (name, active) VALUES ($1, false) RETURNING id`,
				product(r.Name)).Scan(&pid); err != nil {
				return err
			}
			langs := make([]string, r.Langs)
			for i := range langs {
				langs[i] = loadfarm.Lang(i)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO mirror_product_langs (product_id, language) SELECT $1, unnest($2::text[])`, pid, langs); err != nil {
				return err
			}
			paths := make([]string, r.Locations)
			for i := range paths {
				paths[i] = r.Dir + loadfarm.LocationPath(i)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO mirror_locations (product_id, os_id, path)
				SELECT $1, (SELECT id FROM mirror_os WHERE name = 'bench'), unnest($2::text[])`, pid, paths); err != nil {
				return err
			}
		}
		return nil
	})
	return ids, err
}

// saveRelease stores a farm release's manifest, read from the farm's master,
// as a prime would have: a sweep checks the releases sentry knows.
func saveRelease(ctx context.Context, st *store.Store, farm loadfarm.Info, r loadfarm.ReleaseSpec) ([]manifest.Entry, error) {
	u := farm.Master + r.Dir + "SHA256SUMS"
	body, err := httpGet(u)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(bytes.NewReader(body), "SHA256SUMS")
	if err != nil {
		return nil, err
	}
	entries := m.Entries()
	files := make([]store.ReleaseFile, len(entries))
	for i, e := range entries {
		entries[i].Size = r.Size
		files[i] = store.ReleaseFile{Path: e.Path, Size: r.Size, Algo: string(e.Algo), Hash: e.Hash}
	}
	// The manifest's own digest: sweeps read the manifest again and find
	// it unchanged.
	_, err = st.SaveRelease(ctx, r.Name, u, sha256Hex(body), files, store.ManifestValidators{})
	return entries, err
}

// activate switches on exactly the given mirrors and the product of release.
func activate(ctx context.Context, st *store.Store, mirrors []int, release string) error {
	return pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE mirror_mirrors SET active = (id = ANY($1))`, mirrors); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE mirror_products SET active = (name = $1)`, product(release))
		return err
	})
}

// forget removes what earlier scenarios recorded, so that every sweep is
// the first sweep of a known release (unconditional requests, new file
// state rows), and every prime a release's first (no block digests, no
// cache learned), whatever ran before it.
func forget(ctx context.Context, st *store.Store) error {
	_, err := st.Pool().Exec(ctx, `TRUNCATE sentry_checks, sentry_file_state, sentry_mirror_state, sentry_state_changes,
		mirror_location_mirror_map, sentry_log, sentry_block_digests, sentry_mirror_priming, sentry_mirror_ranges`)
	if err != nil {
		return err
	}
	_, err = st.Pool().Exec(ctx, `VACUUM ANALYZE`)
	return err
}

// writeConfig writes a sentry configuration for a farm; extra is appended
// (top-level YAML keys).
func writeConfig(dir, name, dbURL, master string, concurrency, perMirror int, extra string) (string, error) {
	cfg := fmt.Sprintf(`# sentry-bench: %s
database:
  url: %s
  max_conns: 8
master:
  url: %s
releases:
  dir: "/pub/{release}/"
  manifest: SHA256SUMS
  products: ["Bench-{release}"]
checks:
  contact: https://example.org/sentry-bench
  concurrency: %d
  per_mirror_concurrency: %d
  # Figures of speed set the request rate far above what the farm answers:
  # they measure sentry, not its politeness.
  per_mirror_rate: 100000
%s`, name, dbURL, master, concurrency, perMirror, extra)
	p := filepath.Join(dir, name+".yaml")
	return p, os.WriteFile(p, []byte(cfg), 0o600)
}

func ids(all []int, n int) []int { return append([]int(nil), all[:n]...) }

func trimNL(s string) string { return strings.TrimSpace(s) }
