package config

import (
	"strings"

	"github.com/mirrorsentry/sentry/sentry/signature"
)

// signatureProblems are those of the keys that make sentry verify a
// manifest's signature: releases.signature and releases.keyring go
// together, the signature is a name, a URL template or "clearsigned",
// and the keyring is a readable file of at least one public key.
func (r ReleasesConfig) signatureProblems(p *problemList) {
	switch {
	case r.Signature == "" && r.Keyring == "":
		return
	case r.Signature == "":
		p.add("releases.keyring is set but releases.signature is not: set both (the signature's name beside the manifest, or %q) or neither", SignatureClearsigned)
	case r.Keyring == "":
		p.add("releases.signature is set but releases.keyring is not: set both (a file of the publishers' public keys: gpg --armor --export KEYID > keyring.asc) or neither")
	}
	switch sig := r.Signature; {
	case sig == "" || sig == SignatureClearsigned:
	case strings.Contains(sig, "://"):
		if err := checkHTTPURL(strings.ReplaceAll(sig, "{release}", "x")); err != nil {
			p.add("releases.signature %w", err)
		}
	case strings.HasPrefix(sig, "/") || hasDotDot(sig) || strings.HasSuffix(sig, "/"):
		p.add("releases.signature %q must be a file name beside the manifest (SHA256SUMS.asc), a full URL template, or %q", sig, SignatureClearsigned)
	case sig == r.Manifest:
		p.add("releases.signature %q names the manifest itself: for a clearsigned manifest, say %q", sig, SignatureClearsigned)
	}
	if r.Keyring != "" {
		if _, err := signature.ReadKeyring(r.Keyring); err != nil {
			p.add("releases.keyring %s", err)
		}
	}
}
