package checks

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestReachableOverEachFamily: a host name resolving to 127.0.0.1 and ::1
// is reached over the family asked for, on connections pooled per family
// (one over IPv4 is never reused for IPv6).
func TestReachableOverEachFamily(t *testing.T) {
	ln4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln4.Addr().(*net.TCPAddr).AddrPort().Port()
	ln6, err := net.Listen("tcp6", netip.AddrPortFrom(netip.MustParseAddr("::1"), port).String())
	if err != nil {
		ln4.Close()
		t.Skipf("no IPv6 loopback on this host (or [::1]:%d taken): %v", port, err)
	}
	ok := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	ok.Listener = ln4
	ok.Start()
	defer ok.Close()
	bad := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "v6 broken", http.StatusBadGateway)
	}))
	bad.Listener = ln6
	bad.Start()
	defer bad.Close()

	c, err := NewClient(ClientOptions{UserAgent: "sentry-test", Retries: NoRetries,
		Resolver: func(_ context.Context, host string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	base := fmt.Sprintf("http://dual.test:%d/pub", port)
	ctx := context.Background()
	fams, err := c.Families(ctx, base)
	if err != nil || !slices.Equal(fams, []Family{IPv4, IPv6}) {
		t.Fatalf("Families: %v %v", fams, err)
	}
	for i := range 2 { // twice: the second over pooled connections
		if r := Reachable(WithFamily(ctx, IPv4), c, base); r.Kind != KindOK {
			t.Errorf("round %d over IPv4: %s %s", i, r.Kind, r.Detail)
		}
		if r := Reachable(WithFamily(ctx, IPv6), c, base); r.Kind != KindHTTPStatus || r.Status != http.StatusBadGateway {
			t.Errorf("round %d over IPv6: %s %d (want the IPv6 server's 502)", i, r.Kind, r.Status)
		}
	}
	if fams, _ := c.Families(ctx, "http://127.0.0.1:1/"); !slices.Equal(fams, []Family{IPv4}) {
		t.Errorf("an IPv4 literal: %v", fams)
	}
	if r := Reachable(WithFamily(ctx, IPv6), c, "http://127.0.0.1:1/"); r.Kind != KindDNS || !strings.Contains(r.Detail, "no IPv6 address") {
		t.Errorf("IPv6 to an IPv4 literal: %s %s", r.Kind, r.Detail)
	}
}

// TestReachableRecordsTheCertificate: Reachable keeps what the server's
// certificate says, verified or not.
func TestReachableRecordsTheCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	trusting, err := NewClient(ClientOptions{UserAgent: "sentry-test", RootCAs: pool, Retries: NoRetries})
	if err != nil {
		t.Fatal(err)
	}
	r := Reachable(context.Background(), trusting, srv.URL+"/pub")
	if r.Kind != KindOK || r.Cert == nil || r.Cert.Error != "" || !slices.Contains(r.Cert.Names, "127.0.0.1") ||
		!r.Cert.NotAfter.Equal(srv.Certificate().NotAfter) || len(r.Cert.Fingerprint) != 64 || r.Cert.Host != "127.0.0.1" {
		t.Errorf("trusted: %s %+v", r.Kind, r.Cert)
	}
	distrusting, err := NewClient(ClientOptions{UserAgent: "sentry-test", RootCAs: x509.NewCertPool(), Retries: NoRetries})
	if err != nil {
		t.Fatal(err)
	}
	r = Reachable(context.Background(), distrusting, srv.URL+"/pub")
	if r.Kind != KindTLS || r.Cert == nil || !strings.HasPrefix(r.Cert.Error, "untrusted") {
		t.Errorf("untrusted: %s %+v", r.Kind, r.Cert)
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	if r := Reachable(context.Background(), trusting, plain.URL); r.Cert != nil {
		t.Errorf("plain HTTP has a certificate: %+v", r.Cert)
	}
}
