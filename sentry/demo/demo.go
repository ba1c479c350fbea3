// Package demo builds the throwaway world of `sentry demo`: a PostgreSQL
// cluster, a staging master with a small release, eight local mirrors of
// every kind sentry meets, the bouncer rows describing them, and a
// configuration file pointing at it all.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/demo/democa"
	"github.com/mirrorsentry/sentry/sentry/demo/faultmirror"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/demo/pgcluster"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Release is the demo's release name.
const Release = "1.5"

// TriggerSecret signs the demo's triggers. It is a demo value, not a secret.
const TriggerSecret = "demo-trigger-secret"

var langs = []string{"en-US", "de", "fr"}

// locations are the bouncer locations of the demo's products, relative to
// the release directory, as bouncer stores them (with :lang).
var locations = []struct{ os, path string }{
	{"win", "win32/:lang/Firefox Setup 1.5.exe"},
	{"linux", "linux-x86_64/:lang/firefox-1.5.tar.bz2"},
	{"osx", "mac/:lang/Firefox 1.5.dmg"},
}

// World is the demo's running setup. Close it to remove everything.
type World struct {
	Dir        string // temp dir holding the config
	ConfigPath string
	DBURL      string
	Release    *localmirror.Release

	cluster *pgcluster.Cluster
	servers []interface{ Close() error }
	mirrors []mirror
}

type mirror struct {
	name, url, mode, triggerURL, about string
}

// Start builds the world: the cluster and database, the master and the
// mirrors. The bouncer rows are added by Seed, after `sentry db migrate`.
func Start(ctx context.Context, log io.Writer) (w *World, err error) {
	w = &World{}
	defer func() {
		if err != nil {
			w.Close()
			w = nil
		}
	}()
	w.Dir, err = os.MkdirTemp("", "sentry-democfg-")
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(log, "starting a throwaway PostgreSQL cluster…")
	w.cluster, err = pgcluster.Start(ctx, pgcluster.Options{Prefix: "sentry-demo-"})
	if err != nil {
		return nil, err
	}
	if w.DBURL, err = w.cluster.CreateDB(ctx, "bouncer"); err != nil {
		return nil, err
	}

	rel := &localmirror.Release{Name: Release, Dir: "/firefox/releases/" + Release + "/", Files: map[string][]byte{}}
	for i, l := range locations {
		for _, lang := range langs {
			p := strings.ReplaceAll(l.path, ":lang", lang)
			rel.Files[p] = localmirror.Content(p, 256<<10+i*4096)
		}
	}
	w.Release = rel
	master, err := localmirror.NewMaster(rel)
	if err != nil {
		return nil, err
	}
	w.servers = append(w.servers, master)

	pull, err := localmirror.NewPullCache("pull-cache", master)
	if err != nil {
		return nil, err
	}
	w.add(pull, "pull", "", "a pull-through cache: priming makes it fetch from the master")
	trig, err := localmirror.NewTrigger("trigger", rel, []byte(TriggerSecret), 4)
	if err != nil {
		return nil, err
	}
	w.add(trig.Server, "trigger", trig.TriggerURL, "syncs when sent a signed trigger")
	passive, err := localmirror.NewPassive("passive", rel, 6)
	if err != nil {
		return nil, err
	}
	w.add(passive, "passive", "", "syncs on its own schedule (a few polls later)")
	cert, err := democa.ServerCert()
	if err != nil {
		return nil, err
	}
	secure, err := localmirror.NewStaticTLS("https", rel, cert)
	if err != nil {
		return nil, err
	}
	w.add(secure, "pull", "", "serves over https (its certificate from the demo's own CA, checks.ca_file): the ssl_only product's mirror")
	corrupt, err := localmirror.NewStatic("corrupt", rel)
	if err != nil {
		return nil, err
	}
	bad := "linux-x86_64/de/firefox-1.5.tar.bz2"
	corrupt.Put(rel, bad, localmirror.Flip(rel.Files[bad]))
	w.add(corrupt, "pull", "", "serves "+bad+" with one byte changed")
	incomplete, err := localmirror.NewStatic("incomplete", rel)
	if err != nil {
		return nil, err
	}
	gone := "mac/fr/Firefox 1.5.dmg"
	incomplete.Remove(rel, gone)
	w.add(incomplete, "pull", "", "lacks "+gone)
	dead, err := localmirror.DeadURL()
	if err != nil {
		return nil, err
	}
	w.mirrors = append(w.mirrors, mirror{"dead", dead, "pull", "", "nothing listens there"})
	endless := "win32/fr/Firefox Setup 1.5.exe"
	hostile, err := faultmirror.New(faultmirror.Endless, rel, endless)
	if err != nil {
		return nil, err
	}
	w.servers = append(w.servers, hostile)
	w.mirrors = append(w.mirrors, mirror{"hostile", hostile.URL, "pull", "", "answers " + endless + " with a body that never ends"})

	caFile := filepath.Join(w.Dir, "ca.pem")
	caPEM, err := democa.PEM()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`# sentry demo configuration (throwaway)
database:
  url: %s
master:
  url: %s
releases:
  dir: "/firefox/releases/{release}/"
  manifest: SHA256SUMS
  products: ["Firefox-{release}", "Firefox-{release}-SSL"]
  default_langs: [en-US]
checks:
  contact: https://example.org/sentry-demo
  ca_file: %s
  connect_timeout: 2s
  header_timeout: 5s
  body_idle_timeout: 5s
  retries: 1
  retry_wait_min: 100ms
  retry_wait_max: 500ms
prime:
  deadline: 30s
  poll_interval: 200ms
  poll_max: 1s
trigger:
  secret: %s
`, w.DBURL, master.URL, caFile, TriggerSecret)
	w.ConfigPath = filepath.Join(w.Dir, "config.yaml")
	if err := os.WriteFile(w.ConfigPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	return w, nil
}

// Mirrors returns how many mirrors the demo has.
func (w *World) Mirrors() int { return len(w.mirrors) }

func (w *World) add(s *localmirror.Server, mode, triggerURL, about string) {
	w.servers = append(w.servers, s)
	w.mirrors = append(w.mirrors, mirror{s.Name, s.URL, mode, triggerURL, about})
}

// Describe prints the mirrors and what each is like.
func (w *World) Describe(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MIRROR\tMODE\tWHAT IT IS LIKE")
	for _, m := range w.mirrors {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.name, m.mode, m.about)
	}
	tw.Flush()
}

// Seed inserts the bouncer rows: two products (plain and SSL) in three
// languages, their :lang locations, and the mirrors with their settings.
func (w *World) Seed(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, w.DBURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, os := range []string{"win", "linux", "osx"} {
			if _, err := tx.Exec(ctx, `INSERT INTO mirror_os (name) VALUES ($1)`, os); err != nil {
				return err
			}
		}
		for _, product := range []string{"Firefox-" + Release, "Firefox-" + Release + "-SSL"} {
			var pid int
			if err := tx.QueryRow(ctx, `INSERT INTO mirror_products (name, ssl_only) VALUES ($1, $2) RETURNING id`,
				product, strings.HasSuffix(product, "-SSL")).Scan(&pid); err != nil {
				return err
			}
			for _, l := range langs {
				if _, err := tx.Exec(ctx, `INSERT INTO mirror_product_langs (product_id, language) VALUES ($1, $2)`, pid, l); err != nil {
					return err
				}
			}
			for _, l := range locations {
				if _, err := tx.Exec(ctx, `INSERT INTO mirror_locations (product_id, os_id, path)
					SELECT $1, id, $3 FROM mirror_os WHERE name = $2`, pid, l.os, w.Release.Dir+l.path); err != nil {
					return err
				}
			}
		}
		for i, m := range w.mirrors {
			var id int
			if err := tx.QueryRow(ctx, `INSERT INTO mirror_mirrors (name, baseurl, rating) VALUES ($1, $2, $3) RETURNING id`,
				m.name, m.url, 100-10*i).Scan(&id); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO sentry_mirror_settings (mirror_id, prime_mode, trigger_url)
				VALUES ($1, $2, nullif($3, ''))`, id, m.mode, m.triggerURL); err != nil {
				return err
			}
			// Its region: the redirector never offers a mirror without one.
			if _, err := tx.Exec(ctx, `INSERT INTO geoip_mirror_region_map (mirror_id, region_id) VALUES ($1, 1)`, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// ShowRedirector prints, for each location, the mirrors the redirector's
// query (docs/CONTRACTS.md, section 2 (How the redirector reads the
// flags)) would choose among after the prime, for the product's own
// scheme: the region join, and https:// mirrors only for an ssl_only
// product (the demo's "https" mirror).
func (w *World) ShowRedirector(ctx context.Context, out io.Writer) error {
	conn, err := pgx.Connect(ctx, w.DBURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `
		SELECT p.name, l.path,
		       coalesce((SELECT string_agg(m.name, ', ' ORDER BY m.rating DESC)
		                 FROM mirror_mirrors m
		                 JOIN mirror_location_mirror_map lmm ON lmm.mirror_id = m.id
		                 WHERE lmm.location_id = l.id AND lmm.active AND lmm.healthy AND `+store.OfferableSQL("m", "p")+`),
		                CASE WHEN p.ssl_only THEN '(none: ssl_only, and no https:// mirror holds it)' ELSE '(none)' END)
		FROM mirror_locations l JOIN mirror_products p ON p.id = l.product_id
		ORDER BY p.name, l.id`)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRODUCT\tLOCATION\tREDIRECTOR CHOOSES AMONG")
	for rows.Next() {
		var product, path, chosen string
		if err := rows.Scan(&product, &path, &chosen); err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", product, strings.TrimPrefix(path, w.Release.Dir), chosen)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tw.Flush()
}

// ShowLog prints the sentry_log rows of the run: one per mirror, with the
// reason bouncer's own viewers show.
func (w *World) ShowLog(ctx context.Context, out io.Writer) error {
	conn, err := pgx.Connect(ctx, w.DBURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT m.name, s.mirror_active, s.reason FROM sentry_log s
		JOIN mirror_mirrors m ON m.id = s.mirror_id ORDER BY m.id`)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MIRROR\tUP\tREASON (sentry_log)")
	for rows.Next() {
		var name, reason string
		var up bool
		if err := rows.Scan(&name, &up, &reason); err != nil {
			return err
		}
		if len(reason) > 120 {
			reason = reason[:117] + "..."
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\n", name, up, reason)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tw.Flush()
}

// Close stops every server and the cluster and removes the temp files.
func (w *World) Close() error {
	var errs []error
	for _, s := range w.servers {
		errs = append(errs, s.Close())
	}
	if w.cluster != nil {
		errs = append(errs, w.cluster.Close())
	}
	if w.Dir != "" {
		errs = append(errs, os.RemoveAll(w.Dir))
	}
	return errors.Join(errs...)
}
