package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/smtptest"
	"github.com/mirrorsentry/sentry/internal/testkit/testca"
	"github.com/mirrorsentry/sentry/internal/testkit/testnet"
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
// test waits until the site serves it and the workers of before, which
// serve the old one to whoever they still accept, are gone.
func (n *tlsNginx) renew(t *testing.T, s *tlsSite, leaf testca.Leaf, roots *x509.CertPool) {
	t.Helper()
	before := n.srv.Children(t)
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
			if serial.Cmp(leaf.Cert.SerialNumber) == 0 && !slices.ContainsFunc(n.srv.Children(t), func(pid int) bool {
				return slices.Contains(before, pid)
			}) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not serve the renewed certificate of %s alone within a minute (last error %v; workers %v, before the reload %v)",
				s.name, err, n.srv.Children(t), before)
		}
		time.Sleep(50 * time.Millisecond)
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
	t.Parallel()
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
	for p, body := range w.Rel.Files {
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
	w.Query(t, `SELECT count(*) FROM mirror_location_mirror_map lmm JOIN mirror_mirrors m ON m.id = lmm.mirror_id
		WHERE m.name = 'expiring' AND lmm.active AND lmm.healthy`, &offered)
	if offered != 2 {
		t.Errorf("the expiring mirror has %d locations offered, want 2", offered)
	}
	// A certificate is written when it changes only: one row per mirror,
	// seen once.
	var certRows int
	w.Query(t, `SELECT count(*) FROM sentry_mirror_tls`, &certRows)
	if certRows != 5 {
		t.Errorf("%d certificates recorded, want 5", certRows)
	}

	// The metric, read from the database as a scrape does.
	pool, err := pgxpool.New(context.Background(), w.DBURL)
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
	noSecretIn(t, ms, w.DBURL)
	var open int
	w.Query(t, `SELECT count(*) FROM sentry_notices WHERE sent_at IS NULL`, &open)
	if open != 0 {
		t.Errorf("%d notices not sent", open)
	}
}
