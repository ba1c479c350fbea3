package report

import (
	"fmt"
	"time"

	"github.com/mirrorsentry/sentry/checks"
)

// What the views say of an https mirror's certificate.

// TLSInfo is the certificate an https mirror showed at its last sweep.
type TLSInfo struct {
	Host      string    `json:"host"`
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Names     []string  `json:"names"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// Error is why it failed verification (expired, untrusted, another
	// name): the mirror's checks fail with tls. "" when it verified.
	Error string `json:"error"`
	// Warning: it verified, and ends within checks.tls_expiry_warning:
	// the mirror stays offered, its admin is told.
	Warning bool `json:"warning"`
	// SeenAt is when sentry first saw this certificate (with this
	// verdict).
	SeenAt time.Time `json:"seen_at"`
}

// TLSNote says what is to know of the mirror's certificate, "" when all
// is well: "certificate expires in 5 days (2026-12-01 12:00 UTC), issued
// by CN=…", or why it fails.
func (m MirrorRow) TLSNote(now time.Time) string {
	t := m.TLS
	switch {
	case t == nil:
		return ""
	case t.Error != "":
		return "certificate of " + t.Host + ": " + oneLine(t.Error)
	case t.Warning:
		return fmt.Sprintf("certificate of %s %s (%s), issued by %s", t.Host, checks.ExpiresIn(t.NotAfter, now),
			t.NotAfter.UTC().Format("2006-01-02 15:04 UTC"), oneLine(t.Issuer))
	}
	return ""
}
