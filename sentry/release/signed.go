package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/manifest"
	"github.com/mirrorsentry/sentry/sentry/signature"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Reading a manifest as the master serves it, and, with releases.signature
// and releases.keyring, verifying its OpenPGP signature before any entry
// of it is used (package signature does the OpenPGP work).
//
// Memory stays bounded whatever the master serves: the body is bounded by
// releases.max_manifest_bytes, the entries by releases.max_manifest_entries,
// and the bytes are never held whole, except a clearsigned manifest's:
//
//   - unsigned: the body streams through the parser (manifest.ParseMax),
//     hashed (SHA-256) on the way for the release's record;
//   - a detached signature (SHA256SUMS.asc beside SHA256SUMS) is read
//     first — a few hundred bytes, bounded by signature.MaxSignatureBytes —
//     and checked for what needs no manifest byte (it parses, its key is
//     in the keyring, its hash is strong enough); then the manifest
//     streams through the signature's hash and the parser at once. Its
//     entries are discarded unless the signature verifies once the last
//     byte is read: the bytes checked are exactly those parsed, and the
//     manifest is never spooled. When the parser stops early (a malformed
//     line, too many files), the rest is still read, so that a refused
//     signature is what is reported of an unsigned manifest;
//   - a clearsigned manifest is read whole (bounded by
//     releases.max_manifest_bytes, in chunks that are joined once it has
//     ended), verified, and its signed text parsed: the library verifies
//     a message in memory, holding about three times its size at the
//     peak.

// readManifest reads body, the manifest of release name at u, into its
// entries, its SHA-256 and its signer.
func (r *Resolver) readManifest(ctx context.Context, name, u string, body io.Reader) (*fetched, error) {
	cfg := r.Config.Releases
	h := sha256.New()
	in := io.TeeReader(body, h)
	parse := func(rd io.Reader) (*manifest.Manifest, error) {
		m, err := manifest.ParseMax(rd, u, cfg.MaxManifestEntries)
		if errors.Is(err, manifest.ErrTooManyEntries) {
			err = fmt.Errorf("%w (releases.max_manifest_entries)", err)
		}
		return m, err
	}
	if !cfg.Signed() {
		m, err := parse(in)
		if err != nil {
			return nil, err
		}
		return &fetched{manifest: m, sum: hex.EncodeToString(h.Sum(nil))}, nil
	}
	kr, err := signature.ReadKeyring(cfg.Keyring)
	if err != nil {
		return nil, fmt.Errorf("releases.keyring %w", err)
	}
	if cfg.Clearsigned() {
		data, err := readWhole(in)
		if err != nil {
			return nil, fmt.Errorf("%w: read %s: %w", ErrManifest, u, err)
		}
		text, signer, err := kr.Clearsigned(data, time.Now())
		if err != nil {
			return nil, refused(u, "clearsigned manifest", err)
		}
		m, err := parse(bytes.NewReader(text))
		if err != nil {
			return nil, err
		}
		return &fetched{manifest: m, sum: hex.EncodeToString(h.Sum(nil)), signer: storeSigner(signer)}, nil
	}

	sigURL := r.Config.SignatureURL(name)
	sig, err := r.fetchSignature(ctx, sigURL)
	if err != nil {
		return nil, err
	}
	v, err := kr.Detached(sig, in, time.Now())
	if err != nil {
		return nil, refused(u, "signature", err)
	}
	m, parseErr := parse(v)
	signer, sigErr := v.Finish()
	switch {
	case errors.Is(sigErr, signature.ErrSignature):
		return nil, refused(u, "signature", sigErr)
	case parseErr != nil:
		return nil, parseErr
	case sigErr != nil:
		return nil, fmt.Errorf("%w: read %s: %w", ErrManifest, u, sigErr)
	}
	return &fetched{manifest: m, sum: hex.EncodeToString(h.Sum(nil)), signer: storeSigner(signer)}, nil
}

// readWhole reads r to its end into a slice of exactly its size: in
// chunks, joined once at the end, so that a body that goes past its limit
// holds no more than the limit before it fails (io.ReadAll's doubling
// would hold up to twice as much, and copies of it).
func readWhole(r io.Reader) ([]byte, error) {
	const chunk = 1 << 20
	var chunks [][]byte
	total := 0
	for {
		buf := make([]byte, chunk)
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			chunks = append(chunks, buf[:n])
			total += n
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	out := make([]byte, 0, total)
	for i, c := range chunks {
		out = append(out, c...)
		chunks[i] = nil
	}
	return out, nil
}

// fetchSignature reads the detached signature at u. Not there (404, 403,
// 410) is a missing signature: the release is unusable; a master that
// cannot be read now is a *ManifestError of the GET's kind (try again).
func (r *Resolver) fetchSignature(ctx context.Context, u string) ([]byte, error) {
	body, res := checks.FetchIfChanged(ctx, r.Client, u, signature.MaxSignatureBytes, "", "")
	switch {
	case res.Kind == checks.KindOK:
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case res.Kind == checks.KindNotFound || res.Kind == checks.KindForbidden:
		return nil, refused(u, "signature", &signature.Error{Reason: signature.ErrMissing,
			Msg: fmt.Sprintf("there is no signature at %s (%s: %s)", u, res.Kind, res.Detail)})
	case res.Kind == checks.KindTooLarge:
		return nil, refused(u, "signature", &signature.Error{Reason: signature.ErrUnparsable,
			Msg: fmt.Sprintf("the signature at %s is larger than %d bytes: %s", u, signature.MaxSignatureBytes, res.Detail)})
	default:
		return nil, &ManifestError{URL: u, Kind: res.Kind,
			Err: fmt.Errorf("%w: read the signature %s: %s: %s", ErrManifest, u, res.Kind, res.Detail)}
	}
	defer body.Close()
	sig, err := io.ReadAll(body)
	if err != nil {
		if errors.Is(err, checks.ErrBodyTooLarge) {
			return nil, refused(u, "signature", &signature.Error{Reason: signature.ErrUnparsable,
				Msg: fmt.Sprintf("the signature at %s is larger than %d bytes", u, signature.MaxSignatureBytes)})
		}
		return nil, &ManifestError{URL: u, Kind: checks.KindTruncated,
			Err: fmt.Errorf("%w: read the signature %s: %w", ErrManifest, u, err)}
	}
	return sig, nil
}

// refused is the *ManifestError of a manifest whose signature is refused
// (what: "signature" or "clearsigned manifest"): the release is unusable
// (Kind ok: the master answered, with something sentry will not use).
func refused(u, what string, err error) error {
	return &ManifestError{URL: u, Kind: checks.KindOK, Err: fmt.Errorf("%w: %s refused: %w", ErrManifest, what, err)}
}

// Rejection is a changed manifest a sweep refused because its signature
// did not verify: the manifest sentry knows stays in force.
type Rejection struct {
	Release string `json:"release"`
	URL     string `json:"manifest_url"`
	Reason  string `json:"reason"`
}

// Rejected says whether err, of reading release's manifest again, is a
// refused signature, and the rejection it is.
func Rejected(release string, err error) (Rejection, bool) {
	var me *ManifestError
	if !errors.Is(err, signature.ErrSignature) || !errors.As(err, &me) {
		return Rejection{}, false
	}
	return Rejection{Release: release, URL: me.URL, Reason: err.Error()}, true
}

// storeSigner is who signed, as the store records it.
func storeSigner(s signature.Signer) store.ManifestSigner {
	return store.ManifestSigner{Fingerprint: s.Fingerprint, SigningKey: s.SigningKey, UserID: s.UserID, SignedAt: s.SignedAt}
}
