package demo_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo"
	"github.com/mirrorsentry/sentry/sentry/manifest"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// mirrorRow is a mirror as Seed registers it.
type mirrorRow struct {
	name, baseURL, mode, triggerURL string
}

// TestWorld builds the demo's world, and wants: the configuration it
// writes loads (secret-holding, so private) and points at its database,
// master and trigger secret; Seed's bouncer rows name the release's files
// and every mirror with its prime mode; each mirror answers as Describe
// says; ShowRedirector reads the marks; Close leaves nothing running or on
// disk.
func TestWorld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var log bytes.Buffer
	w, err := demo.Start(ctx, &log)
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, log.String())
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			w.Close()
		}
	})
	rel := w.Release
	client := &http.Client{Timeout: time.Minute}

	// The configuration.
	if fi, err := os.Stat(w.ConfigPath); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("the configuration file: %v, mode %v; want it readable by its owner alone", err, fi.Mode())
	}
	cfg, err := config.Load(w.ConfigPath, func(string) string { return "" })
	if err != nil {
		t.Fatalf("the demo's configuration does not load: %v", err)
	}
	if cfg.Database.URL != w.DBURL || cfg.Trigger.Secret != demo.TriggerSecret || !slices.Contains(cfg.Releases.Products, "Firefox-{release}") {
		t.Errorf("configuration: database %q, trigger secret %q, products %q", cfg.Database.URL, cfg.Trigger.Secret, cfg.Releases.Products)
	}
	sums := get(t, cfg.Master.URL+"/firefox/releases/"+demo.Release+"/"+cfg.Releases.Manifest)
	mf, err := manifest.Parse(bytes.NewReader(sums.body), cfg.Releases.Manifest)
	if err != nil {
		t.Fatalf("the master's manifest: %v", err)
	}
	if got := len(mf.Entries()); got != len(rel.Files) || len(rel.Files) != 9 {
		t.Errorf("the manifest lists %d files, the release has %d; want 9", got, len(rel.Files))
	}

	// The bouncer's rows.
	st, err := store.Open(ctx, w.DBURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Seed(ctx); err != nil {
		t.Fatalf("Seed: %v", err)
	}
	pool := st.Pool()
	rows, err := pool.Query(ctx, `SELECT m.name, m.baseurl, s.prime_mode, coalesce(s.trigger_url, '')
		FROM mirror_mirrors m JOIN sentry_mirror_settings s ON s.mirror_id = m.id ORDER BY m.rating DESC`)
	if err != nil {
		t.Fatal(err)
	}
	mirrors, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (m mirrorRow, err error) {
		return m, r.Scan(&m.name, &m.baseURL, &m.mode, &m.triggerURL)
	})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]mirrorRow{}
	var names, modes []string
	for _, m := range mirrors {
		byName[m.name] = m
		names, modes = append(names, m.name), append(modes, m.mode)
	}
	if want := []string{"pull-cache", "trigger", "passive", "https", "corrupt", "incomplete", "dead", "hostile"}; !slices.Equal(names, want) || w.Mirrors() != len(want) {
		t.Fatalf("mirrors by rating %q (Mirrors() %d), want %q", names, w.Mirrors(), want)
	}
	if want := []string{"pull", "trigger", "passive", "pull", "pull", "pull", "pull", "pull"}; !slices.Equal(modes, want) || byName["trigger"].triggerURL == "" {
		t.Errorf("prime modes %q, trigger URL %q; want %q and a trigger URL", modes, byName["trigger"].triggerURL, want)
	}
	// Every location, in every language of its product, is a file of the
	// release; the -SSL product is ssl_only.
	rows, err = pool.Query(ctx, `SELECT p.name, p.ssl_only, l.path, array_agg(pl.language ORDER BY pl.language)
		FROM mirror_locations l JOIN mirror_products p ON p.id = l.product_id
		JOIN mirror_product_langs pl ON pl.product_id = p.id GROUP BY 1, 2, 3, l.id ORDER BY l.id`)
	if err != nil {
		t.Fatal(err)
	}
	locations := 0
	for rows.Next() {
		var product, path string
		var ssl bool
		var langs []string
		if err := rows.Scan(&product, &ssl, &path, &langs); err != nil {
			t.Fatal(err)
		}
		locations++
		if ssl != strings.HasSuffix(product, "-SSL") || !slices.Equal(langs, []string{"de", "en-US", "fr"}) {
			t.Errorf("%s: ssl_only %v, languages %q", product, ssl, langs)
		}
		for _, l := range langs {
			if p := strings.ReplaceAll(path, ":lang", l); !strings.HasPrefix(p, rel.Dir) || rel.Files[strings.TrimPrefix(p, rel.Dir)] == nil {
				t.Errorf("%s: location %s in %s is no file of the release", product, path, l)
			}
		}
	}
	if err := rows.Err(); err != nil || locations != 6 {
		t.Errorf("%d locations (%v), want 2 products × 3", locations, err)
	}

	// Each mirror as Describe says.
	var desc bytes.Buffer
	w.Describe(&desc)
	for _, m := range mirrors {
		if !strings.Contains(desc.String(), m.name+" ") {
			t.Errorf("Describe does not show %s:\n%s", m.name, desc.String())
		}
	}
	paths := rel.Paths()
	fileURL := func(m, p string) string { return byName[m].baseURL + (&url.URL{Path: rel.Dir + p}).EscapedPath() }
	t.Run("pull-cache fetches from the master, then keeps", func(t *testing.T) {
		for _, want := range []string{"MISS", "HIT"} {
			if a := get(t, fileURL("pull-cache", paths[0])); a.status != 200 || !bytes.Equal(a.body, rel.Files[paths[0]]) || a.header.Get("X-Cache-Status") != want {
				t.Errorf("%d, X-Cache-Status %q; want the file, %s", a.status, a.header.Get("X-Cache-Status"), want)
			}
		}
	})
	t.Run("trigger syncs once triggered with the configuration's secret", func(t *testing.T) {
		u := fileURL("trigger", paths[0])
		if a := get(t, u); a.status != 404 {
			t.Fatalf("before a trigger: %d, want 404", a.status)
		}
		body := []byte(`{"release":"` + demo.Release + `","files":[]}`)
		mac := hmac.New(sha256.New, []byte(cfg.Trigger.Secret))
		mac.Write(body)
		req, _ := http.NewRequest(http.MethodPost, byName["trigger"].triggerURL, bytes.NewReader(body))
		req.Header.Set("X-Sentry-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("the signed trigger: %d, want 202", resp.StatusCode)
		}
		syncs(t, u, rel.Files[paths[0]])
	})
	t.Run("passive syncs on its own", func(t *testing.T) {
		u := fileURL("passive", paths[0])
		if a := get(t, u); a.status != 404 {
			t.Fatalf("at first: %d, want 404", a.status)
		}
		syncs(t, u, rel.Files[paths[0]])
	})
	t.Run("https serves every file, verified by the configuration's CA alone", func(t *testing.T) {
		if !strings.HasPrefix(byName["https"].baseURL, "https://") {
			t.Fatalf("base URL %q, want https://", byName["https"].baseURL)
		}
		pem, err := os.ReadFile(cfg.Checks.CAFile)
		if err != nil {
			t.Fatalf("checks.ca_file: %v", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			t.Fatalf("checks.ca_file %s holds no certificate", cfg.Checks.CAFile)
		}
		tlsClient := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
		for _, p := range paths {
			resp, err := tlsClient.Get(fileURL("https", p))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, rel.Files[p]) {
				t.Errorf("%s: %d, %v; want the file", p, resp.StatusCode, err)
			}
		}
		if _, err := client.Get(fileURL("https", paths[0])); err == nil {
			t.Error("the system's roots verify the demo's certificate; want it refused")
		}
	})
	t.Run("corrupt and incomplete lack one file each", func(t *testing.T) {
		for _, c := range []struct{ mirror, path string }{
			{"corrupt", "linux-x86_64/de/firefox-1.5.tar.bz2"}, {"incomplete", "mac/fr/Firefox 1.5.dmg"},
		} {
			if rel.Files[c.path] == nil {
				t.Fatalf("%s is no file of the release", c.path)
			}
			for _, p := range paths {
				a := get(t, fileURL(c.mirror, p))
				switch {
				case p != c.path:
					if a.status != 200 || !bytes.Equal(a.body, rel.Files[p]) {
						t.Errorf("%s %s: %d, want the file", c.mirror, p, a.status)
					}
				case c.mirror == "corrupt":
					if a.status != 200 || len(a.body) != len(rel.Files[p]) || bytes.Equal(a.body, rel.Files[p]) {
						t.Errorf("%s %s: %d, %d bytes; want a copy of the same size that differs", c.mirror, p, a.status, len(a.body))
					}
				default:
					if a.status != 404 {
						t.Errorf("%s %s: %d, want 404", c.mirror, p, a.status)
					}
				}
			}
		}
	})
	t.Run("dead refuses", func(t *testing.T) {
		if _, err := client.Get(fileURL("dead", paths[0])); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%v, want the connection refused", err)
		}
	})
	t.Run("hostile never ends a body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		const p = "win32/fr/Firefox Setup 1.5.exe"
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fileURL("hostile", p), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if n, err := io.CopyN(io.Discard, resp.Body, 4*int64(len(rel.Files[p]))); err != nil {
			t.Errorf("%d bytes, then %v; want more than 4 times the file", n, err)
		}
		if a := get(t, fileURL("hostile", paths[0])); a.status != 200 || !bytes.Equal(a.body, rel.Files[paths[0]]) {
			t.Errorf("another file: %d, want it served right", a.status)
		}
	})

	// The redirector's view: nothing yet; then one good mark.
	var view bytes.Buffer
	if err := w.ShowRedirector(ctx, &view); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(view.String(), "(none"); n != 6 {
		t.Errorf("before any mark, %d locations with no mirror, want 6:\n%s", n, view.String())
	}
	var loc, cache int
	if err := pool.QueryRow(ctx, `SELECT (SELECT min(id) FROM mirror_locations), (SELECT id FROM mirror_mirrors WHERE name = 'pull-cache')`).Scan(&loc, &cache); err != nil {
		t.Fatal(err)
	}
	factory.LocationMirror(ctx, t, pool, &factory.LocationMirrorOpts{LocationID: loc, MirrorID: cache, Active: factory.Ptr(true)})
	view.Reset()
	if err := w.ShowRedirector(ctx, &view); err != nil {
		t.Fatal(err)
	}
	if strings.Count(view.String(), "(none") != 5 || strings.Count(view.String(), "pull-cache") != 1 {
		t.Errorf("with pull-cache offered on one location:\n%s", view.String())
	}

	// Close: nothing left.
	st.Close()
	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	closed = true
	if _, err := os.Stat(w.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the configuration's directory is left: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if conn, err := pgx.Connect(cctx, w.DBURL); err == nil {
		conn.Close(ctx)
		t.Error("the database still answers")
	}
	for _, u := range []string{cfg.Master.URL, byName["pull-cache"].baseURL, byName["hostile"].baseURL, strings.Replace(byName["https"].baseURL, "https://", "http://", 1)} {
		if _, err := client.Get(u + "/"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s after Close: %v, want the connection refused", u, err)
		}
	}
}

// answer is an answer read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func get(t *testing.T, u string) answer {
	t.Helper()
	status, body, header := world.Get(t, u)
	return answer{status, header, []byte(body)}
}

// syncs polls u, as a prime would, until it serves want: within a few
// polls ("a few polls later").
func syncs(t *testing.T, u string, want []byte) {
	t.Helper()
	for range 10 {
		if a := get(t, u); a.status == 200 {
			if !bytes.Equal(a.body, want) {
				t.Errorf("synced, but serves %d other bytes", len(a.body))
			}
			return
		}
	}
	t.Errorf("%s not synced after 10 polls", u)
}
