// Package democa is the throwaway certificate authority of the demo's
// https mirrors: made in memory once per process, valid for a day, and
// signing one certificate for the loopback addresses (127.0.0.1, ::1,
// localhost). Give its PEM to checks.ca_file (or its Pool to
// checks.ClientOptions.RootCAs) and those mirrors verify; nothing else
// does.
package democa

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

var (
	once    sync.Once
	pool    *x509.CertPool
	caPEM   []byte
	leaf    tls.Certificate
	makeErr error
)

// Pool returns a pool holding the authority's certificate.
func Pool() (*x509.CertPool, error) {
	once.Do(makeCA)
	return pool, makeErr
}

// PEM returns the authority's certificate, PEM-encoded (for
// checks.ca_file).
func PEM() ([]byte, error) {
	once.Do(makeCA)
	return caPEM, makeErr
}

// ServerCert returns the loopback server certificate the authority signed,
// with its key.
func ServerCert() (tls.Certificate, error) {
	once.Do(makeCA)
	return leaf, makeErr
}

func makeCA() {
	if err := build(); err != nil {
		makeErr = fmt.Errorf("democa: %w", err)
	}
}

func build() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sentry demo CA (throwaway)"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	leaf = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return nil
}
