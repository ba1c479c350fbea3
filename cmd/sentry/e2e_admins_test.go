package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"

	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/smtptest"
	"github.com/mirrorsentry/sentry/internal/testkit/testca"
	"github.com/mirrorsentry/sentry/internal/testkit/testnet"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/metrics"
)

// tlsSite is one https mirror of a real nginx: its name and certificate.
type tlsSite struct {
	name string
	leaf testca.Leaf
	url  string // https://127.0.0.1:PORT/pub, once started
	cert string // the certificate's file, rewritten to renew it
}

// tlsNginx is one real nginx serving a release's files over https, a
// server per site on a socket of its own.
type tlsNginx struct {
	srv *realmirror.Server
}

// startTLSNginx starts nginx serving root's files under /pub/ on every
// site, each with its own certificate. Its sockets are opened by the test
// and handed over (NGINX inheritance, realmirror.Nginx).
func startTLSNginx(t *testing.T, root string, sites []*tlsSite) *tlsNginx {
	t.Helper()
	dir := t.TempDir()
	var files []*os.File
	var servers []string
	for _, s := range sites {
		f, addr := testnet.Listen(t)
		defer f.Close()
		files = append(files, f)
		s.url = "https://" + addr.String() + "/pub"
		var key string
		s.cert, key = s.leaf.Write(t, dir, s.name)
		servers = append(servers, fmt.Sprintf(`    server {
        listen %s ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        location /pub/ { alias %s/; }
    }`, addr, s.cert, key, root))
	}
	return &tlsNginx{srv: realmirror.Nginx(t, "https", dir, strings.Join(servers, "\n"), files)}
}

// renew gives site a new certificate: nginx reloads (SIGHUP), and the
// test waits until the site serves it.
func (n *tlsNginx) renew(t *testing.T, s *tlsSite, leaf testca.Leaf, roots *x509.CertPool) {
	t.Helper()
	if err := os.WriteFile(s.cert, leaf.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(s.cert, ".pem")+".key", leaf.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.srv.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s.url, "https://"), "/pub")
	deadline := time.Now().Add(time.Minute)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", host,
			&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err == nil {
			serial := conn.ConnectionState().PeerCertificates[0].SerialNumber
			conn.Close()
			if serial.Cmp(leaf.Cert.SerialNumber) == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not serve the renewed certificate of %s within a minute (last error %v)", s.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// adminWorld is a bouncer database, a master and a config for the tests
// of mirror admins, run through the built binary.
type adminWorld struct {
	*world
	env []string
}

// Secrets the admin tests configure, none of which may reach a mail.
const (
	testSMTPPassword = "sm7p p@ss/w#rd%&:é"
	testHookSecret   = "hook-secret-the-mails-never-show"
)

func newAdminWorld(t *testing.T, extra string) *adminWorld {
	t.Helper()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	for _, p := range []string{"win32/en-US/Firefox Setup 1.5.exe", "linux-x86_64/en-US/firefox-1.5.tar.bz2"} {
		rel.Files[p] = localmirror.Content(p, 20_000)
	}
	w := newBareWorld(t, rel)
	cfg := fmt.Sprintf(`database:
  url: %s
master:
  url: %s
releases:
  dir: "/firefox/releases/{release}/"
  products: ["Firefox-{release}"]
http:
  public_url: https://status.example.org/sentry
guard:
  max_down_fraction: 0.9
%s`, w.dbURL, w.master.URL, extra)
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	aw := &adminWorld{world: w, env: []string{"SENTRY_HOOK_SECRET=" + testHookSecret}}
	if strings.Contains(extra, "user: sentry") { // the relay wants a password
		aw.env = append(aw.env, "SENTRY_SMTP_PASSWORD="+testSMTPPassword)
	}
	aw.run(t, 0, "db", "migrate")
	w.exec(t, `WITH p AS (INSERT INTO mirror_products (name) VALUES ('Firefox-1.5') RETURNING id),
		o AS (INSERT INTO mirror_os (name) VALUES ('win'), ('linux') RETURNING id, name)
		INSERT INTO mirror_locations (product_id, os_id, path)
		SELECT p.id, o.id, CASE o.name WHEN 'win' THEN '/firefox/releases/1.5/win32/:lang/Firefox Setup 1.5.exe'
		                               ELSE '/firefox/releases/1.5/linux-x86_64/:lang/firefox-1.5.tar.bz2' END FROM p, o`)
	return aw
}

// run runs the binary and wants exit code want; it returns stdout.
func (w *adminWorld) run(t *testing.T, want int, args ...string) string {
	t.Helper()
	stdout, stderr, code := runSentry(t, w.cfg, w.env, args...)
	if code != want {
		t.Fatalf("sentry %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), code, want, stdout, stderr)
	}
	return stdout
}

// addMirror registers a mirror with its admin's contact.
func (w *adminWorld) addMirror(t *testing.T, name, baseURL, contact string) {
	t.Helper()
	w.exec(t, `WITH m AS (INSERT INTO mirror_mirrors (name, baseurl, rating) VALUES ($1, $2, 50) RETURNING id)
		INSERT INTO sentry_mirror_settings (mirror_id, contact) SELECT id, $3 FROM m`, name, baseURL, contact)
}

// adminRow is a mirror of `sentry report --format json`, as these tests
// read it.
type adminRow struct {
	Name           string   `json:"name"`
	State          string   `json:"state"`
	Degraded       bool     `json:"degraded"`
	LastReason     string   `json:"last_reason"`
	BrokenFamilies []string `json:"broken_families"`
	TLS            *struct {
		Issuer   string    `json:"issuer"`
		Names    []string  `json:"names"`
		NotAfter time.Time `json:"not_after"`
		Error    string    `json:"error"`
		Warning  bool      `json:"warning"`
	} `json:"tls"`
	Maintenance *struct {
		Until  time.Time `json:"until"`
		Reason string    `json:"reason"`
	} `json:"maintenance"`
	Returning bool `json:"returning"`
}

func (w *adminWorld) report(t *testing.T) map[string]adminRow {
	t.Helper()
	var rep struct {
		Mirrors []adminRow `json:"mirrors"`
	}
	out := w.run(t, 0, "report", "--format", "json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, out)
	}
	rows := map[string]adminRow{}
	for _, m := range rep.Mirrors {
		rows[m.Name] = m
	}
	return rows
}

// mailTo returns the mails to addr.
func mailTo(ms []smtptest.Message, addr string) []smtptest.Message {
	var out []smtptest.Message
	for _, m := range ms {
		for _, to := range m.EnvelopeTo {
			if to == addr {
				out = append(out, m)
			}
		}
	}
	return out
}

// noSecretIn fails when a mail holds a configured secret, in any form.
func noSecretIn(t *testing.T, ms []smtptest.Message, dbURL string) {
	t.Helper()
	secrets := []string{testSMTPPassword, "p@ss/w#rd", testHookSecret}
	if i := strings.Index(dbURL, "://"); i >= 0 {
		if at := strings.LastIndexByte(dbURL, '@'); at > i {
			if _, pw, ok := strings.Cut(dbURL[i+3:at], ":"); ok && len(pw) >= 6 {
				secrets = append(secrets, pw)
			}
		}
	}
	for _, m := range ms {
		for _, s := range secrets {
			if bytes.Contains(m.Raw, []byte(s)) || strings.Contains(m.Body, s) {
				t.Errorf("mail %q holds a secret", m.Header.Get("Subject"))
			}
		}
	}
}

// TestTLSCertificatesWithNginxAndMail runs the built binary against real
// nginx https mirrors whose certificates the test made — valid from a test
// CA given by checks.ca_file, valid but ending within the warning period,
// expired, for another name, self-signed — and a real SMTP server
// (aiosmtpd, STARTTLS and AUTH): the expiring one stays up with a warning
// (report, metric, one mail to its admin), the others fail with tls and
// go down, each admin getting one mail saying why; a renewed certificate
// brings its mirror back, with one mail more; sweeps that find nothing new
// mail nothing.
func TestTLSCertificatesWithNginxAndMail(t *testing.T) {
	ca := testca.New(t, "sentry test CA")
	now := time.Now()
	ip := []string{"127.0.0.1"}
	sites := []*tlsSite{
		{name: "good", leaf: ca.Issue(t, ip, now.Add(-time.Hour), now.Add(365*24*time.Hour))},
		{name: "expiring", leaf: ca.Issue(t, ip, now.Add(-30*24*time.Hour), now.Add(5*24*time.Hour+time.Hour))},
		{name: "expired", leaf: ca.Issue(t, ip, now.Add(-60*24*time.Hour), now.Add(-24*time.Hour))},
		{name: "wrongname", leaf: ca.Issue(t, []string{"other.example"}, now.Add(-time.Hour), now.Add(365*24*time.Hour))},
		{name: "untrusted", leaf: (*testca.CA)(nil).Issue(t, ip, now.Add(-time.Hour), now.Add(365*24*time.Hour))},
	}
	root := t.TempDir()
	rel := "/firefox/releases/1.5/"
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	smtpCert, smtpKey := ca.Issue(t, ip, now.Add(-time.Hour), now.Add(24*time.Hour)).Write(t, dir, "smtp")
	mailer := smtptest.Start(t, smtptest.Options{CertFile: smtpCert, KeyFile: smtpKey, User: "sentry", Password: testSMTPPassword})

	w := newAdminWorld(t, fmt.Sprintf(`checks:
  contact: ops@example.org
  ca_file: %s
  per_mirror_rate: 100000
  retries: 0
notify:
  smtp:
    host: 127.0.0.1
    port: %d
    user: sentry
    from: sentry@example.org
`, caFile, mailer.Port))
	for p, body := range w.rel.Files {
		path := filepath.Join(root, rel, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ngx := startTLSNginx(t, root, sites)
	for _, s := range sites {
		w.addMirror(t, s.name, s.url, "admin-"+s.name+"@example.org")
	}

	w.run(t, 0, "prime", "--release", "1.5")
	// The prime judges the mirrors that fail TLS down at once; the sweeps
	// find nothing new to mail.
	for range 3 {
		w.run(t, 0, "sweep")
	}
	rows := w.report(t)
	exp := rows["expiring"]
	if exp.State != "up" || exp.Degraded || exp.TLS == nil || !exp.TLS.Warning || exp.TLS.Error != "" ||
		!exp.TLS.NotAfter.Equal(sites[1].leaf.Cert.NotAfter) || !strings.Contains(exp.TLS.Issuer, "sentry test CA") ||
		len(exp.TLS.Names) != 1 || exp.TLS.Names[0] != "127.0.0.1" {
		t.Errorf("expiring: %+v %+v; want up, offered, with a warning and the certificate's end", exp, exp.TLS)
	}
	if g := rows["good"]; g.State != "up" || g.TLS == nil || g.TLS.Warning || g.TLS.Error != "" {
		t.Errorf("good: %+v %+v", g, g.TLS)
	}
	for name, word := range map[string]string{"expired": "expired", "wrongname": "wrong name", "untrusted": "untrusted"} {
		r := rows[name]
		if r.State != "down" || !strings.Contains(r.LastReason, "tls") || r.TLS == nil || !strings.Contains(r.TLS.Error, word) || r.TLS.Warning {
			t.Errorf("%s: %+v %+v; want down by tls, its certificate %s", name, r, r.TLS, word)
		}
	}
	// The expiring mirror stays offered: every location active and healthy.
	var offered int
	w.query(t, `SELECT count(*) FROM mirror_location_mirror_map lmm JOIN mirror_mirrors m ON m.id = lmm.mirror_id
		WHERE m.name = 'expiring' AND lmm.active AND lmm.healthy`, &offered)
	if offered != 2 {
		t.Errorf("the expiring mirror has %d locations offered, want 2", offered)
	}
	// A certificate is written when it changes only: one row per mirror,
	// seen once.
	var certRows int
	w.query(t, `SELECT count(*) FROM sentry_mirror_tls`, &certRows)
	if certRows != 5 {
		t.Errorf("%d certificates recorded, want 5", certRows)
	}

	// The metric, read from the database as a scrape does.
	pool, err := pgxpool.New(context.Background(), w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	fams, err := metrics.New(pool, nil).Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "sentry_mirror_tls_not_after_timestamp_seconds" && f.GetName() != "sentry_mirror_tls_warning" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[f.GetName()+"/"+label(m, "mirror")] = m.GetGauge().GetValue()
		}
	}
	if v := got["sentry_mirror_tls_not_after_timestamp_seconds/expiring"]; int64(v) != sites[1].leaf.Cert.NotAfter.Unix() {
		t.Errorf("sentry_mirror_tls_not_after_timestamp_seconds{mirror=expiring} = %v, want %d", v, sites[1].leaf.Cert.NotAfter.Unix())
	}
	if got["sentry_mirror_tls_warning/expiring"] != 1 || got["sentry_mirror_tls_warning/good"] != 0 {
		t.Errorf("sentry_mirror_tls_warning: %v", got)
	}

	// One mail to each admin concerned, none to the good mirror's.
	ms := mailer.Wait(t, 4, time.Minute)
	if len(ms) != 4 {
		t.Fatalf("%d mails, want 4 (one warning, three downs)", len(ms))
	}
	warn := mailTo(ms, "admin-expiring@example.org")
	if len(warn) != 1 || !strings.Contains(warn[0].Header.Get("Subject"), "expires in 5 days") ||
		!strings.Contains(warn[0].Body, "stays offered") || !strings.Contains(warn[0].Body, "https://status.example.org/sentry/mirrors/expiring") {
		t.Errorf("warning mails to the expiring mirror's admin: %d %+v", len(warn), warn)
	}
	for _, name := range []string{"expired", "wrongname", "untrusted"} {
		got := mailTo(ms, "admin-"+name+"@example.org")
		if len(got) != 1 {
			t.Errorf("%s: %d mails, want 1", name, len(got))
			continue
		}
		m := got[0]
		if m.Header.Get("Subject") != "[sentry] mirror "+name+" is down" || !strings.Contains(m.Body, "Why: down: prime 1.5: mirror down") ||
			!strings.Contains(m.Body, "tls") || !strings.Contains(m.Body, "The checks that decided it") ||
			!strings.Contains(m.Body, "/sentry/mirrors/"+name) || m.Login != "sentry" || !m.TLS {
			t.Errorf("%s: mail %q over TLS %v as %q:\n%s", name, m.Header.Get("Subject"), m.TLS, m.Login, m.Body)
		}
	}
	if len(mailTo(ms, "admin-good@example.org")) != 0 {
		t.Error("the good mirror's admin got mail")
	}

	// The expired mirror's admin renews: two sweeps bring it back, with
	// one mail; the others stay as they were, and mail nothing more.
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	ngx.renew(t, sites[2], ca.Issue(t, ip, now.Add(-time.Hour), now.Add(365*24*time.Hour)), roots)
	w.run(t, 0, "sweep")
	w.run(t, 0, "sweep")
	if r := w.report(t)["expired"]; r.State != "up" || r.TLS == nil || r.TLS.Error != "" {
		t.Errorf("renewed: %+v %+v", r, r.TLS)
	}
	ms = mailer.Wait(t, 5, time.Minute)
	back := mailTo(ms, "admin-expired@example.org")
	if len(ms) != 5 || len(back) != 2 || back[1].Header.Get("Subject") != "[sentry] mirror expired is back up" ||
		!strings.Contains(back[1].Body, "up after 2 good sweeps") {
		t.Errorf("%d mails, %d to the renewed mirror's admin; want 5 and 2 (down, back up)", len(ms), len(back))
	}
	noSecretIn(t, ms, w.dbURL)
	var open int
	w.query(t, `SELECT count(*) FROM sentry_notices WHERE sent_at IS NULL`, &open)
	if open != 0 {
		t.Errorf("%d notices not sent", open)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
