package checks

import (
	"context"
	"crypto/sha256"
	"hash"
)

// BlockDigestSize is the size of one block digest: a SHA-256.
const BlockDigestSize = sha256.Size

// Blocks are the digests of a file's blocks, read from the master's copy:
// the SHA-256 of every Size-byte block of the file in order (the last
// block may be shorter), BlockDigestSize bytes each. Sample compares a
// mirror's blocks with them.
type Blocks struct {
	Size    int64
	Digests []byte
}

// Count is the number of blocks.
func (b Blocks) Count() int { return len(b.Digests) / BlockDigestSize }

// digest is block i's digest.
func (b Blocks) digest(i int) []byte {
	return b.Digests[i*BlockDigestSize : (i+1)*BlockDigestSize]
}

// BlockCount is the number of blockSize-byte blocks of a file of size
// bytes (the last one may be shorter).
func BlockCount(size, blockSize int64) int {
	if size <= 0 || blockSize <= 0 {
		return 0
	}
	return int((size + blockSize - 1) / blockSize)
}

// Digest reads a file in full with a GET — the master's copy, the one
// known good — and checks it as Verify does (size, checksum, every bound);
// on KindOK it also returns the digests of its blockSize-byte blocks,
// computed as the bytes stream in. The file is never held in memory: only
// its digests are, BlockDigestSize bytes per block, appended as blocks
// complete (so they grow with the bytes received, whatever size t claims).
func Digest(ctx context.Context, c *Client, t Target, blockSize int64) (Blocks, Result) {
	if blockSize <= 0 {
		p := newProbe(ctx, c, false)
		return Blocks{}, p.invalid("block size %d is not positive", blockSize)
	}
	w := &blockWriter{size: blockSize, h: sha256.New()}
	res := verify(ctx, c, t, w)
	if res.Kind != KindOK || !res.Hashed {
		return Blocks{}, res
	}
	return Blocks{Size: blockSize, Digests: w.finish()}, res
}

// blockWriter hashes what it is written block by block.
type blockWriter struct {
	size int64
	h    hash.Hash
	n    int64 // bytes of the current block so far
	out  []byte
}

func (w *blockWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		take := min(int64(len(p)), w.size-w.n)
		w.h.Write(p[:take])
		w.n += take
		p = p[take:]
		if w.n == w.size {
			w.out = w.h.Sum(w.out)
			w.h.Reset()
			w.n = 0
		}
	}
	return total, nil
}

// finish returns the digests, the last short block's included.
func (w *blockWriter) finish() []byte {
	if w.n > 0 {
		w.out = w.h.Sum(w.out)
		w.h.Reset()
		w.n = 0
	}
	return w.out
}
