package signature

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// maxKeyringBytes bounds the keyring file: a few public keys are a few
// KiB; a file of megabytes is not a keyring.
const maxKeyringBytes = 4 << 20

// Armour block types.
const (
	publicKeyBlock  = "PGP PUBLIC KEY BLOCK"
	privateKeyBlock = "PGP PRIVATE KEY BLOCK"
	signatureBlock  = "PGP SIGNATURE"
)

// armorStart begins every ASCII-armoured block.
var armorStart = []byte("-----BEGIN PGP ")

// Keyring is the publishers' public keys a manifest may be signed with
// (releases.keyring), read from a file of ASCII-armoured OpenPGP public
// key blocks, as `gpg --armor --export KEYID` writes them; several blocks
// may follow one another in the file.
type Keyring struct {
	file     string
	entities openpgp.EntityList
}

// ReadKeyring reads the keyring file. Its errors name the file and never
// quote its contents: the file does not exist or cannot be read, holds no
// public key block, holds a private key (export only the public key), or a
// block that is not a readable public key.
func ReadKeyring(file string) (*Keyring, error) {
	// A FIFO or a device would block or never end: a keyring is a file.
	if st, err := os.Stat(file); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%q is not a regular file", file)
	}
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%q does not exist", file)
		}
		return nil, fmt.Errorf("%q cannot be read: %v", file, errors.Unwrap(err))
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxKeyringBytes+1)); err != nil {
		return nil, fmt.Errorf("%q cannot be read: %v", file, err)
	}
	if buf.Len() > maxKeyringBytes {
		return nil, fmt.Errorf("%q is larger than %d bytes: not a keyring of public keys", file, maxKeyringBytes)
	}
	k := &Keyring{file: file}
	data := buf.Bytes()
	n := 0
	for {
		i := bytes.Index(data, armorStart)
		if i < 0 {
			break
		}
		data = data[i:]
		// One block: up to the next block's start.
		end := bytes.Index(data[len(armorStart):], armorStart)
		block := data
		if end >= 0 {
			block, data = data[:len(armorStart)+end], data[len(armorStart)+end:]
		} else {
			data = nil
		}
		n++
		b, err := armor.Decode(bytes.NewReader(block))
		if err != nil {
			return nil, fmt.Errorf("%q: armoured block %d cannot be decoded: %v", file, n, err)
		}
		switch b.Type {
		case publicKeyBlock:
		case privateKeyBlock:
			return nil, fmt.Errorf("%q: block %d is a PRIVATE key: the keyring holds public keys only (gpg --armor --export KEYID)", file, n)
		default:
			return nil, fmt.Errorf("%q: block %d is a %q block, not a %q", file, n, b.Type, publicKeyBlock)
		}
		el, err := openpgp.ReadKeyRing(b.Body)
		if err != nil {
			return nil, fmt.Errorf("%q: block %d holds no usable public key: %v", file, n, err)
		}
		for _, e := range el {
			if e.PrivateKey != nil {
				return nil, fmt.Errorf("%q: block %d holds a private key: the keyring holds public keys only", file, n)
			}
		}
		k.entities = append(k.entities, el...)
	}
	if len(k.entities) == 0 {
		return nil, fmt.Errorf("%q holds no OpenPGP public key (want -----BEGIN PGP PUBLIC KEY BLOCK----- blocks, as `gpg --armor --export KEYID` writes)", file)
	}
	return k, nil
}

// File is the keyring's file name.
func (k *Keyring) File() string { return k.file }

// Len is the number of public keys (primary keys, with their subkeys) in
// the keyring.
func (k *Keyring) Len() int { return len(k.entities) }

// Fingerprints are the primary keys' fingerprints, in the file's order.
func (k *Keyring) Fingerprints() []string {
	out := make([]string, len(k.entities))
	for i, e := range k.entities {
		out[i] = fingerprint(e.PrimaryKey.Fingerprint)
	}
	return out
}
