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
			t := checks.Target{URL: primer.FileURL(r.Config.Master.URL, dir, e.Path), Size: e.Size, Algo: string(e.Algo), Hash: e.Hash}
			b, res := checks.Digest(gctx, r.Client, t, bs)
			if res.Kind != checks.KindOK || !res.Hashed {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				return fmt.Errorf("%w: release %s is unusable: the master's copy of %s is not the manifest's (%s: %s)",
					ErrMasterCopy, name, e.Path, res.Kind, res.Detail)
			}
			return r.Store.SaveBlockDigests(gctx, keys[i], b.Digests)
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

// AttachDigests gives the plan's files the stored block digests of the
// master's copy (verify.block_size), for a sampled prime; a file without
// them keeps none and is verified in full. Memory: BlockDigestSize bytes
// per block of the release, shared by every mirror.
func (r *Resolver) AttachDigests(ctx context.Context, p *Plan) error {
	bs := r.Config.Verify.BlockSize.Bytes()
	keys := make([]store.DigestKey, len(p.Files))
	for i, f := range p.Files {
		keys[i] = store.DigestKey{Algo: f.Algo, Hash: f.Hash, Size: f.Size, BlockSize: bs}
	}
	have, err := r.Store.BlockDigests(ctx, keys)
	if err != nil {
		return err
	}
	for i := range p.Files {
		if d, ok := have[keys[i]]; ok && len(d) == checks.BlockCount(p.Files[i].Size, bs)*checks.BlockDigestSize {
			p.Files[i].Blocks = checks.Blocks{Size: bs, Digests: d}
		}
	}
	return nil
}
