// Package signature verifies the OpenPGP signature of a release's
// checksum manifest against the publishers' public keys
// (releases.signature, releases.keyring): a detached signature over the
// manifest's bytes as served (SHA256SUMS.asc beside SHA256SUMS, armoured
// or binary), or a clearsigned manifest, whose signed text is then what is
// read.
//
// The OpenPGP work is github.com/ProtonMail/go-crypto's (its v2 API): the
// maintained implementation of the standard, never hand-rolled here. What
// this package adds is sentry's policy, stricter than the library's
// defaults where a release gate must be:
//
//   - the signing key must be valid both when it signed (the library's
//     check) and now: a key that has expired or been revoked since signs
//     nothing new, whatever date a signature claims (the date is the
//     signer's word, and a stolen retired key could backdate);
//   - SHA-1, MD5 and RIPEMD-160 signatures are refused, as are DSA and
//     ElGamal keys and RSA keys under 2047 bits (the library's defaults
//     for its v2 API, kept);
//   - a signature may be dated up to MaxClockSkew ahead of this clock (the
//     signer's clock may run ahead); later, it is refused;
//   - only document signatures (binary or text) count, and a signature
//     file holds signature packets only;
//   - a clearsigned manifest has no unsigned text before or after its
//     signed block.
//
// Which key signed is told back (Signer: the primary key's fingerprint,
// its primary user id and the signature's time), for the release's
// record. Every failure is an *Error wrapping ErrSignature and one of the
// reasons (ErrUnparsable, ErrUnknownKey, ...), with a message naming what
// is wrong and never quoting the manifest.
package signature

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// MaxClockSkew is how far ahead of this clock a signature may be dated.
const MaxClockSkew = 5 * time.Minute

// MaxSignatureBytes bounds a detached signature file: a signature is a
// few hundred bytes, a file of several a few KiB.
const MaxSignatureBytes = 64 << 10

// ErrSignature is wrapped by every verification failure: the manifest is
// not to be used.
var ErrSignature = errors.New("manifest signature not valid")

// The reasons a signature is refused; an *Error wraps one of them.
var (
	// ErrMissing: there is no signature where the configuration says
	// (package release says so; this package is given bytes).
	ErrMissing = errors.New("signature missing")
	// ErrUnparsable: not an OpenPGP signature, or not a clearsigned
	// message, or unsigned text around a clearsigned one.
	ErrUnparsable = errors.New("signature unparsable")
	// ErrUnknownKey: made by no key of the keyring.
	ErrUnknownKey = errors.New("signing key not in the keyring")
	// ErrKeyExpired: the signing key has expired (now, or when it signed).
	ErrKeyExpired = errors.New("signing key expired")
	// ErrKeyUnusable: the signing key is revoked, of a weak algorithm, or
	// not a signing key.
	ErrKeyUnusable = errors.New("signing key unusable")
	// ErrWeakHash: made with SHA-1, MD5 or RIPEMD-160.
	ErrWeakHash = errors.New("signature hash refused")
	// ErrBadSignature: the signature does not match the bytes (a forged or
	// altered manifest), has expired, or is dated in the future.
	ErrBadSignature = errors.New("signature does not match")
)

// Error is a refused signature: Reason is one of the reasons above, Msg
// says what was found.
type Error struct {
	Reason error
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap gives ErrSignature and the reason.
func (e *Error) Unwrap() []error { return []error{ErrSignature, e.Reason} }

func refuse(reason error, format string, a ...any) *Error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, a...)}
}

// Signer is who signed a manifest.
type Signer struct {
	// Fingerprint is the signing key's primary key fingerprint, in
	// upper-case hexadecimal without spaces (as `gpg --with-colons` prints
	// it); SigningKey the subkey's when a subkey signed ("" otherwise).
	Fingerprint string `json:"fingerprint"`
	SigningKey  string `json:"signing_key,omitempty"`
	// UserID is the key's primary user id ("Release Team
	// <release@example.org>").
	UserID string `json:"user_id"`
	// SignedAt is the signature's creation time, as the signer dated it.
	SignedAt time.Time `json:"signed_at"`
}

// String is "USER ID, key FINGERPRINT".
func (s Signer) String() string {
	if s.Fingerprint == "" {
		return ""
	}
	if s.UserID == "" {
		return "key " + s.Fingerprint
	}
	return s.UserID + ", key " + s.Fingerprint
}

// config is the library's configuration at now: its defaults (which
// refuse SHA-1 message signatures and weak keys) and the clock, MaxClockSkew
// ahead.
func config(now time.Time) *packet.Config {
	at := now.Add(MaxClockSkew)
	return &packet.Config{Time: func() time.Time { return at }}
}

// Verifier verifies a detached signature over bytes streamed through it:
// read it to the end (manifest.Parse does), then Finish says who signed.
// Nothing read through it is to be used before Finish returns no error.
type Verifier struct {
	k   *Keyring
	now time.Time
	cfg *packet.Config
	md  *openpgp.MessageDetails
	eof bool
}

// Detached starts verifying sig, a detached signature (armoured or
// binary), over signed. What can be known before the signed bytes are
// read is checked at once: the signature parses, and one of its
// signatures is made by a key of the keyring with a hash sentry accepts.
func (k *Keyring) Detached(sig []byte, signed io.Reader, now time.Time) (*Verifier, error) {
	cfg := config(now)
	bin, err := k.precheck(sig, cfg)
	if err != nil {
		return nil, err
	}
	md, err := openpgp.VerifyDetachedSignatureReader(k.entities, signed, bytes.NewReader(bin), cfg)
	if err != nil {
		return nil, k.classify(err, nil, now)
	}
	return &Verifier{k: k, now: now, cfg: cfg, md: md}, nil
}

// Read reads the signed bytes, hashing them; once it has given io.EOF it
// gives nothing more (the library's reader must see its end once).
func (v *Verifier) Read(p []byte) (int, error) {
	if v.eof {
		return 0, io.EOF
	}
	n, err := v.md.UnverifiedBody.Read(p)
	if err == io.EOF {
		v.eof = true
	}
	return n, err
}

// Finish reads what is left of the signed bytes and says who signed them.
// An error reading them (a body too large, a connection lost) is returned
// as it is; a refused signature is an *Error.
func (v *Verifier) Finish() (Signer, error) {
	if _, err := io.Copy(io.Discard, v); err != nil {
		return Signer{}, err
	}
	return v.k.verdict(v.md, v.now)
}

// Clearsigned verifies a clearsigned message and returns its signed text
// (dash-escaping undone, as a reader of the message sees it) and who
// signed it.
func (k *Keyring) Clearsigned(data []byte, now time.Time) ([]byte, Signer, error) {
	const begin = "-----BEGIN PGP SIGNED MESSAGE-----"
	b, rest := clearsign.Decode(data)
	if b == nil {
		if !bytes.Contains(data, []byte(begin)) {
			return nil, Signer{}, refuse(ErrUnparsable, "not a clearsigned message: no %s line", begin)
		}
		return nil, Signer{}, refuse(ErrUnparsable, "not a well-formed clearsigned message (its headers, its text or its signature block)")
	}
	if i := bytes.Index(data, []byte(begin)); i < 0 || len(bytes.TrimSpace(data[:i])) > 0 {
		return nil, Signer{}, refuse(ErrUnparsable, "the clearsigned message has unsigned text before its %s line", begin)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, Signer{}, refuse(ErrUnparsable, "the clearsigned message has unsigned text after its signature")
	}
	sig, err := io.ReadAll(io.LimitReader(b.ArmoredSignature.Body, MaxSignatureBytes+1))
	if err != nil {
		return nil, Signer{}, refuse(ErrUnparsable, "the clearsigned message's signature block cannot be decoded: %v", err)
	}
	if len(sig) > MaxSignatureBytes {
		return nil, Signer{}, refuse(ErrUnparsable, "the clearsigned message's signature block is larger than %d bytes", MaxSignatureBytes)
	}
	v, err := k.Detached(sig, bytes.NewReader(b.Bytes), now)
	if err != nil {
		return nil, Signer{}, err
	}
	s, err := v.Finish()
	if err != nil {
		return nil, Signer{}, err
	}
	return b.Plaintext, s, nil
}

// precheck parses sig (armoured or binary) into its signature packets and
// checks what needs no signed bytes: every packet is a document
// signature, and one is by a key of the keyring with a hash sentry
// accepts. It returns the binary packets.
func (k *Keyring) precheck(sig []byte, cfg *packet.Config) ([]byte, error) {
	if len(sig) > MaxSignatureBytes {
		return nil, refuse(ErrUnparsable, "the signature is larger than %d bytes", MaxSignatureBytes)
	}
	bin := sig
	if i := bytes.Index(sig, armorStart); i >= 0 {
		b, err := armor.Decode(bytes.NewReader(sig[i:]))
		if err != nil {
			return nil, refuse(ErrUnparsable, "the signature's armour cannot be decoded: %v", err)
		}
		if b.Type != signatureBlock {
			return nil, refuse(ErrUnparsable, "the signature file holds a %q block, not a %q", b.Type, signatureBlock)
		}
		if bin, err = io.ReadAll(b.Body); err != nil {
			return nil, refuse(ErrUnparsable, "the signature's armour cannot be decoded: %v", err)
		}
	}
	var sigs []*packet.Signature
	r := packet.NewReader(bytes.NewReader(bin))
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, refuse(ErrUnparsable, "not an OpenPGP signature: %v", err)
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			return nil, refuse(ErrUnparsable, "the signature file holds a %T packet: want signature packets only", p)
		}
		if s.SigType != packet.SigTypeBinary && s.SigType != packet.SigTypeText {
			return nil, refuse(ErrUnparsable, "the signature is of type %#x, not a signature of a document", uint8(s.SigType))
		}
		sigs = append(sigs, s)
	}
	if len(sigs) == 0 {
		return nil, refuse(ErrUnparsable, "not an OpenPGP signature: no signature packet")
	}
	var issuers, weak []string
	known := 0
	for _, s := range sigs {
		if s.IssuerKeyId == nil {
			return nil, refuse(ErrUnparsable, "a signature names no issuer key")
		}
		issuers = append(issuers, fmt.Sprintf("%016X", *s.IssuerKeyId))
		if len(k.entities.KeysById(*s.IssuerKeyId)) == 0 {
			continue
		}
		if cfg.RejectMessageHashAlgorithm(s.Hash) {
			weak = append(weak, hashName(s))
			continue
		}
		known++
	}
	switch {
	case known > 0:
		return bin, nil
	case len(weak) > 0:
		return nil, refuse(ErrWeakHash, "the manifest is signed with %s, which sentry refuses: sign with SHA-256 or better (gpg --digest-algo SHA256)",
			strings.Join(weak, ", "))
	}
	return nil, refuse(ErrUnknownKey, "signed by key %s, not in the keyring %s (it holds %s)",
		strings.Join(issuers, ", "), k.file, strings.Join(k.Fingerprints(), ", "))
}

func hashName(s *packet.Signature) string {
	switch n := s.Hash.String(); n {
	case "SHA-1", "MD5", "RIPEMD-160":
		return n
	default:
		return fmt.Sprintf("hash %s", n)
	}
}

// verdict is what the library found, with sentry's own checks: the
// signing key still valid now.
func (k *Keyring) verdict(md *openpgp.MessageDetails, now time.Time) (Signer, error) {
	if md.SignatureError != nil || md.SignedBy == nil || md.Signature == nil {
		err := md.SignatureError
		if err == nil {
			err = errors.New("no signature verified")
		}
		return Signer{}, k.classify(err, md, now)
	}
	key := md.SignedBy
	e := key.Entity
	cfg := config(now)
	s := Signer{Fingerprint: fingerprint(e.PrimaryKey.Fingerprint), SignedAt: md.Signature.CreationTime.UTC()}
	if !key.IsPrimary() {
		s.SigningKey = fingerprint(key.PublicKey.Fingerprint)
	}
	if _, id := e.PrimaryIdentity(md.Signature.CreationTime, cfg); id != nil {
		s.UserID = id.Name
	}
	// Valid when it signed (the library's check); and now.
	if _, err := e.VerifyPrimaryKey(cfg.Now(), cfg); err != nil {
		return Signer{}, k.keyRefused(err, s, key)
	}
	if !key.IsPrimary() {
		for i := range e.Subkeys {
			sub := &e.Subkeys[i]
			if sub.PublicKey.KeyId != key.PublicKey.KeyId {
				continue
			}
			if _, err := sub.Verify(cfg.Now(), cfg); err != nil {
				return Signer{}, k.keyRefused(err, s, key)
			}
		}
	}
	return s, nil
}

// keyRefused says why a key that made a good signature cannot be trusted
// now: expired (naming when) or revoked.
func (k *Keyring) keyRefused(err error, s Signer, key *openpgp.Key) error {
	who := s.String()
	if errors.Is(err, pgperrors.ErrKeyRevoked) {
		return refuse(ErrKeyUnusable, "the manifest is signed by %s, which has been revoked", who)
	}
	if when := keyExpiry(key); !when.IsZero() {
		return refuse(ErrKeyExpired, "the manifest is signed by %s, which expired on %s: the key must be valid now (extend it, then export it to %s again)",
			who, when.UTC().Format(time.RFC3339), k.file)
	}
	if errors.Is(err, pgperrors.ErrKeyExpired) {
		return refuse(ErrKeyExpired, "the manifest is signed by %s, which has expired", who)
	}
	return refuse(ErrKeyUnusable, "the manifest is signed by %s, which cannot be used now: %v", who, err)
}

// keyExpiry is the earliest expiry of the signing key and its primary key
// by their self-signatures (zero for none).
func keyExpiry(key *openpgp.Key) time.Time {
	var out time.Time
	add := func(pk *packet.PublicKey, sig *packet.Signature) {
		if pk == nil || sig == nil || sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
			return
		}
		t := pk.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
		if out.IsZero() || t.Before(out) {
			out = t
		}
	}
	add(key.Entity.PrimaryKey, key.PrimarySelfSignature)
	if !key.IsPrimary() {
		add(key.PublicKey, key.SelfSignature)
	}
	return out
}

// classify turns the library's verdict into a reason.
func (k *Keyring) classify(err error, md *openpgp.MessageDetails, now time.Time) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	by := ""
	if md != nil && md.SelectedCandidate != nil {
		by = fmt.Sprintf(" (key %016X)", md.SelectedCandidate.IssuerKeyId)
	}
	var weakKey pgperrors.WeakAlgorithmError
	var sigErr pgperrors.SignatureError
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return refuse(ErrUnknownKey, "signed by a key not in the keyring %s%s", k.file, by)
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return refuse(ErrKeyExpired, "the signing key%s had expired when it signed the manifest", by)
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return refuse(ErrKeyUnusable, "the signing key%s has been revoked", by)
	case errors.As(err, &weakKey):
		return refuse(ErrKeyUnusable, "the signing key%s is of a weak algorithm, which sentry refuses: %v", by, err)
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return refuse(ErrBadSignature, "the signature%s has expired, or is dated more than %s after this clock's %s",
			by, MaxClockSkew, now.UTC().Format(time.RFC3339))
	case errors.As(err, &sigErr) && strings.Contains(string(sigErr), "insecure"):
		return refuse(ErrWeakHash, "the signature%s is refused: %v", by, err)
	case errors.As(err, &sigErr):
		return refuse(ErrBadSignature, "the signature%s does not match the manifest's bytes: the manifest was altered, or the signature is of another file", by)
	}
	return refuse(ErrBadSignature, "the signature%s is not valid: %v", by, err)
}

// fingerprint is a key fingerprint in upper-case hexadecimal.
func fingerprint(b []byte) string { return strings.ToUpper(fmt.Sprintf("%x", b)) }
