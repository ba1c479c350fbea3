package checks

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"time"
)

// Cert is what a check saw of an https mirror's certificate (the leaf
// the server presented), whether it verified or not. Every string is
// bounded and sanitised: it comes from the mirror.
type Cert struct {
	// Host is the host name the certificate was checked against.
	Host string `json:"host"`
	// Fingerprint is the SHA-256 of the certificate (DER), in hex.
	Fingerprint string    `json:"fingerprint"`
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Names       []string  `json:"names"` // DNS names and IP addresses it is valid for
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	// Error is why verification failed (expired, untrusted, another
	// name), "" when it passed.
	Error string `json:"error,omitempty"`
}

// maxCertNames bounds the names kept of a certificate.
const maxCertNames = 20

func newCert(host string, c *x509.Certificate) *Cert {
	sum := sha256.Sum256(c.Raw)
	out := &Cert{Host: clip(host, 255), Fingerprint: hex.EncodeToString(sum[:]), Subject: clip(c.Subject.String(), 200),
		Issuer: clip(c.Issuer.String(), 200), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), Names: []string{}}
	for _, n := range c.DNSNames {
		out.Names = append(out.Names, clip(n, 255))
	}
	for _, ip := range c.IPAddresses {
		out.Names = append(out.Names, ip.String())
	}
	sort.Strings(out.Names)
	if len(out.Names) > maxCertNames {
		out.Names = out.Names[:maxCertNames]
	}
	return out
}

// certOfResp is the leaf certificate of the verified connection an answer
// came on, nil for plain HTTP.
func certOfResp(resp *http.Response) *Cert {
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return nil
	}
	var u *url.URL
	if resp.Request != nil {
		u = resp.Request.URL
	}
	return newCert(hostOf(u), resp.TLS.PeerCertificates[0])
}

// certOfErr is the certificate a failed verification was about, nil when
// the error is not one.
func certOfErr(rawURL string, err error) *Cert {
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) || len(cve.UnverifiedCertificates) == 0 {
		return nil
	}
	u, _ := url.Parse(rawURL)
	c := newCert(hostOf(u), cve.UnverifiedCertificates[0])
	c.Error = clip(certProblem(cve.Err), 200)
	return c
}

func hostOf(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.Hostname()
}

// certProblem says in a few words what is wrong with a certificate.
func certProblem(err error) string {
	var (
		inv x509.CertificateInvalidError
		hn  x509.HostnameError
		ua  x509.UnknownAuthorityError
	)
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "expired or not yet valid: " + err.Error()
	case errors.As(err, &hn):
		return "wrong name: " + err.Error()
	case errors.As(err, &ua):
		return "untrusted: " + err.Error()
	case err == nil:
		return "verification failed"
	}
	return err.Error()
}

// RootPool is the system's trusted roots with extra ones added (from
// checks.ca_file): what mirror certificates are verified against.
func RootPool(extra []*x509.Certificate) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, c := range extra {
		pool.AddCert(c)
	}
	return pool, nil
}

// ExpiresIn says how long until a certificate's end, in whole days (or
// hours under a day) for people: "in 5 days", "expired 2 days ago".
func ExpiresIn(notAfter, now time.Time) string {
	d := notAfter.Sub(now)
	word := func(d time.Duration) string {
		switch {
		case d >= 48*time.Hour:
			return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
		case d >= 2*time.Hour:
			return fmt.Sprintf("%d hours", int(d/time.Hour))
		default:
			return fmt.Sprintf("%d minutes", max(int(d/time.Minute), 1))
		}
	}
	if d < 0 {
		return "expired " + word(-d) + " ago"
	}
	return "expires in " + word(d)
}
