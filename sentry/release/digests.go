package release

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/manifest"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// ErrMasterCopy is wrapped by the error of a release whose master does
// not serve a file as its manifest says (another size or checksum, or not
// at all): the one copy known good is not, and the release is unusable.
// Nothing is written and no mirror is contacted.
var ErrMasterCopy = errors.New("the master's copy does not match the manifest")

// masterReads is how many files are read from the master at once.
const masterReads = 4

// digestKey is the key of a file's block digests at blockSize.
func digestKey(e manifest.Entry, blockSize int64) store.DigestKey {
	return store.DigestKey{Algo: string(e.Algo), Hash: e.Hash, Size: e.Size, BlockSize: blockSize}
}

// digestMaster reads from the master, once, every file of entries whose
// block digests sentry does not hold yet, checks each against the
// manifest (size and checksum, every byte through the hash) and stores
// the digest of each of its blocks (verify.block_size). Digests are kept
// by contents, so a re-run, a resumed prime, or another release holding
// the same bytes reads nothing again. Memory is one file's digests per
// read in flight, never a file. A file the master serves otherwise than
// the manifest says fails the release (ErrMasterCopy): mirrors could only
// copy it wrong.
func (r *Resolver) digestMaster(ctx context.Context, name, dir string, entries []manifest.Entry) error {
	bs := r.Config.Verify.BlockSize.Bytes()
	keys := make([]store.DigestKey, len(entries))
	for i, e := range entries {
		keys[i] = digestKey(e, bs)
	}
	have, err := r.Store.BlockDigests(ctx, keys)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(masterReads)
	for i, e := range entries {
		if _, ok := have[keys[i]]; ok || e.Size == 0 {
			continue
		}
		g.Go(func() error {
			_, err := r.digestOne(gctx, name, dir, e, keys[i])
			return err
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

// digestOne reads file e of release name from the master, checks it
// against the manifest and stores the digests of its blocks under key.
// A file the master serves otherwise than the manifest says is an
// ErrMasterCopy naming it.
func (r *Resolver) digestOne(ctx context.Context, name, dir string, e manifest.Entry, key store.DigestKey) (checks.Blocks, error) {
	t := checks.Target{URL: primer.FileURL(r.Config.Master.URL, dir, e.Path), Size: e.Size, Algo: string(e.Algo), Hash: e.Hash}
	b, res := checks.Digest(ctx, r.Client, t, key.BlockSize)
	if res.Kind != checks.KindOK || !res.Hashed {
		if ctx.Err() != nil {
			return checks.Blocks{}, ctx.Err()
		}
		return checks.Blocks{}, fmt.Errorf("%w: %s", ErrMasterCopy, masterCopyDetail(name, e.Path, res))
	}
	return b, r.Store.SaveBlockDigests(ctx, key, b.Digests)
}

// masterCopyDetail says which file of a release the master serves wrong,
// and how.
func masterCopyDetail(name, path string, res checks.Result) string {
	return fmt.Sprintf("release %s is unusable: the master's copy of %s is not the manifest's (%s: %s)", name, path, res.Kind, res.Detail)
}
