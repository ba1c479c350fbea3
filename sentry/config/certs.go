package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// The certificates' keys: checks.ca_file, checks.tls_expiry_warning.

// certProblems are those of the checks' certificates: the CA file and the
// warning period.
func (c ChecksConfig) certProblems(p *problemList) {
	if f := c.CAFile; f != "" {
		if err := checkCAFile(f); err != nil {
			p.add("checks.ca_file %s", err)
		}
	}
	if w := c.TLSExpiryWarning.D(); w < time.Hour || w > 365*24*time.Hour {
		p.add("checks.tls_expiry_warning must be between 1h and 365d, not %s", c.TLSExpiryWarning)
	}
}

// checkCAFile checks that f is a readable PEM file of at least one
// certificate.
func checkCAFile(f string) error {
	_, err := ReadCAFile(f)
	return err
}

// ReadCAFile reads the certificates of a PEM file (checks.ca_file). Its
// errors name the file, never its contents.
func ReadCAFile(f string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(f)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%q does not exist", f)
		}
		return nil, fmt.Errorf("%q cannot be read: %v", f, errors.Unwrap(err))
	}
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%q: PEM block %d is not a certificate: %v", f, n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%q holds no PEM certificate (want -----BEGIN CERTIFICATE----- blocks)", f)
	}
	return certs, nil
}
