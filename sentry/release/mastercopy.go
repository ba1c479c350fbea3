package release

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/manifest"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// The master's copy of a release, read while the mirrors are primed.
//
// A prime does not wait for the master's copy of the whole release before
// it primes the first mirror: each file's block digests are ready when its
// own read from the master is done (a sampled check of a file waits for
// that file only), and the verdict on the whole copy — every file is the
// manifest's — comes when the last read is done. No mark is written
// before the verdict: a wrong master copy still fails the release with
// nothing marked (ErrMasterCopy), though some mirrors were primed by
// then. The sentry that plans the prime reads the copy (Resolve); the
// others working on the prime follow it through the database
// (WatchMaster): the digests stored as each read ends, and the verdict
// recorded in sentry_releases.master_state.

// ErrMasterUnread is wrapped by the verdict of a master copy that was not
// read to the end: the sentry reading it stopped, or the prime ended
// first. Nothing was marked; a re-run reads the rest.
var ErrMasterUnread = errors.New("the master's copy was not read to the end")

// masterPoll is how often a sentry following another's read of the
// master's copy looks at the database while it waits.
const masterPoll = 250 * time.Millisecond

// MasterCopy is the master's copy of a release as it is read: each file's
// block digests, ready when its read is done, and the verdict on the
// whole, once every file was read.
type MasterCopy struct {
	files map[string]*masterFile // by manifest path
	done  chan struct{}
	err   error // the verdict: set before done is closed

	// poll, for a copy another sentry reads, looks at the database (at
	// most every masterPoll, one caller at a time) and settles what it
	// finds there.
	poll   func(ctx context.Context) error
	pollMu sync.Mutex
	polled time.Time
	once   sync.Once // settles the verdict
	// stop ends this sentry's reads (readMaster's).
	stop context.CancelFunc
}

// masterFile is one file of the copy.
type masterFile struct {
	key    store.DigestKey
	ready  chan struct{}
	blocks checks.Blocks
	once   sync.Once
}

func newMasterCopy(keys map[string]store.DigestKey) *MasterCopy {
	m := &MasterCopy{files: make(map[string]*masterFile, len(keys)), done: make(chan struct{})}
	for path, k := range keys {
		m.files[path] = &masterFile{key: k, ready: make(chan struct{})}
	}
	return m
}

// fileReady settles one file with its digests (none: verified in full).
func (m *MasterCopy) fileReady(path string, blocks checks.Blocks) {
	if f := m.files[path]; f != nil {
		f.once.Do(func() {
			f.blocks = blocks
			close(f.ready)
		})
	}
}

// settle records the verdict, once.
func (m *MasterCopy) settle(err error) {
	m.once.Do(func() {
		m.err = err
		close(m.done)
	})
}

// Stop ends the reads of a copy this sentry reads (a prime whose plan
// failed after it started them): the verdict is then ErrMasterUnread,
// and none is recorded.
func (m *MasterCopy) Stop() {
	if m.stop != nil {
		m.stop()
	}
}

// Verdict returns the verdict when it is known: nil for a copy found
// good, an error wrapping ErrMasterCopy or ErrMasterUnread otherwise.
// known is false while files are still being read.
func (m *MasterCopy) Verdict() (err error, known bool) {
	select {
	case <-m.done:
		return m.err, true
	default:
		return nil, false
	}
}

// Wait waits for the verdict (or ctx) and returns it.
func (m *MasterCopy) Wait(ctx context.Context) error {
	for {
		if err, ok := m.Verdict(); ok {
			return err
		}
		if err := m.waitStep(ctx, nil); err != nil {
			return err
		}
	}
}

// Blocks waits until the read of the file at path is done and returns
// its block digests (none for a file the copy does not hold, or that is
// empty). Its error is the verdict's when the copy failed before the
// file was read, or ctx's.
func (m *MasterCopy) Blocks(ctx context.Context, path string) (checks.Blocks, error) {
	f := m.files[path]
	if f == nil {
		return checks.Blocks{}, nil
	}
	for {
		select {
		case <-f.ready:
			return f.blocks, nil
		default:
		}
		if err, ok := m.Verdict(); ok && err != nil {
			return checks.Blocks{}, err
		}
		if err := m.waitStep(ctx, f.ready); err != nil {
			return checks.Blocks{}, err
		}
	}
}

// waitStep waits for one change: ready (when not nil) or the verdict, or,
// for a copy another sentry reads, the next look at the database.
func (m *MasterCopy) waitStep(ctx context.Context, ready chan struct{}) error {
	var tick <-chan time.Time
	if m.poll != nil {
		if err := m.pollOnce(ctx); err != nil {
			return err
		}
		t := time.NewTimer(masterPoll)
		defer t.Stop()
		tick = t.C
	}
	select {
	case <-ready:
	case <-m.done:
	case <-tick:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// pollOnce looks at the database, unless someone did within masterPoll.
// A database error is not the copy's: it is returned, and the caller's
// work is given back.
func (m *MasterCopy) pollOnce(ctx context.Context) error {
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	if time.Since(m.polled) < masterPoll {
		return nil
	}
	if err := m.poll(ctx); err != nil {
		return err
	}
	m.polled = time.Now()
	return nil
}

// digestKeys are the keys of the block digests of files (sizes known),
// by path.
func digestKeys(files []primer.File, blockSize int64) map[string]store.DigestKey {
	keys := make(map[string]store.DigestKey, len(files))
	for _, f := range files {
		keys[f.Path] = store.DigestKey{Algo: f.Algo, Hash: f.Hash, Size: f.Size, BlockSize: blockSize}
	}
	return keys
}

// blocksOf are the stored digests d of a file of size as checks.Blocks,
// or none when they are not whole.
func blocksOf(d []byte, size, blockSize int64) checks.Blocks {
	if len(d) != checks.BlockCount(size, blockSize)*checks.BlockDigestSize {
		return checks.Blocks{}
	}
	return checks.Blocks{Size: blockSize, Digests: d}
}

// readMaster starts reading the master's copy of the release of p, in
// the order the mirrors are primed (by path), masterReads files at once:
// every file whose block digests sentry does not hold yet is read once,
// checked against the manifest (size and checksum, every byte through the
// hash) and its digests stored (verify.block_size). Files whose digests
// are stored are ready at once. When every file was read right, verified
// runs (the prime takes withdrawn and respun locations off there, before
// any mark) and the verdict is recorded good (master_state 'ok'); a file
// the master serves otherwise than the manifest says stops the reads and
// records the verdict failed, naming it (ErrMasterCopy). ctx ending stops
// the reads without a verdict recorded (ErrMasterUnread). Memory: the
// digests of the files read (32 bytes a block), never a file.
func (r *Resolver) readMaster(ctx context.Context, p *Plan, verified func(ctx context.Context) error) (*MasterCopy, error) {
	bs := r.Config.Verify.BlockSize.Bytes()
	keys := digestKeys(p.Files, bs)
	m := newMasterCopy(keys)
	all := make([]store.DigestKey, 0, len(keys))
	for _, k := range keys {
		all = append(all, k)
	}
	have, err := r.Store.BlockDigests(ctx, all)
	if err != nil {
		return nil, err
	}
	var todo []primer.File
	for _, f := range p.Files {
		if d, ok := have[keys[f.Path]]; ok || f.Size == 0 {
			m.fileReady(f.Path, blocksOf(d, f.Size, bs))
			continue
		}
		todo = append(todo, f)
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].Path < todo[j].Path })
	name, sha, relID := p.Release.Name, p.Release.ManifestSHA256, p.Release.ID
	if len(todo) > 0 {
		// Being read: sweeps leave the release alone, and the verdict is
		// this read's, even on a copy found good before.
		if err := r.Store.SetMasterState(ctx, relID, sha, store.MasterPending, ""); err != nil {
			return nil, err
		}
	}
	ctx, m.stop = context.WithCancel(ctx)
	log := r.log().With("release", name)
	go func() {
		defer m.stop()
		err := r.readFiles(ctx, name, p.Dir, todo, keys, m)
		// The verdict is recorded whatever ctx does now: it is the
		// release's, and the other sentries wait for it (r.retry gives
		// up in the end).
		rec := context.WithoutCancel(ctx)
		switch {
		case errors.Is(err, ErrMasterCopy):
			detail := strings.TrimPrefix(err.Error(), ErrMasterCopy.Error()+": ")
			log.Error("the master's copy is not the manifest's: the release is unusable, and nothing is marked", "why", detail)
			if serr := r.retry(rec, "recording the master's copy wrong", func() error {
				return r.Store.SetMasterState(rec, relID, sha, store.MasterFailed, detail)
			}); serr != nil {
				err = fmt.Errorf("%w (and the verdict could not be recorded: %v)", err, serr)
			}
		case err != nil:
			err = fmt.Errorf("%w: %w", ErrMasterUnread, err)
		default:
			if verified != nil {
				err = r.retry(ctx, "taking withdrawn and respun locations off", func() error { return verified(ctx) })
			}
			if err == nil {
				err = r.retry(rec, "recording the master's copy good", func() error {
					return r.Store.SetMasterState(rec, relID, sha, store.MasterOK, "")
				})
			}
			if err != nil {
				err = fmt.Errorf("the master's copy was read right, but marking could not begin: %w", err)
				log.Error("nothing is marked", "err", err)
			} else {
				log.Info("the master's copy was read to the end: every file is the manifest's; marking", "files_read", len(todo))
			}
		}
		m.settle(err)
	}()
	return m, nil
}

// readFiles reads files from the master (digestMaster's reads, in order),
// settling each in m as its read is done. It returns the first failure.
func (r *Resolver) readFiles(ctx context.Context, name, dir string, files []primer.File, keys map[string]store.DigestKey, m *MasterCopy) error {
	bs := r.Config.Verify.BlockSize.Bytes()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(masterReads)
	for _, f := range files {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			b, err := r.digestOne(gctx, name, dir, manifest.Entry{Path: f.Path, Size: f.Size, Algo: manifest.Algo(f.Algo), Hash: f.Hash}, keys[f.Path])
			if err != nil {
				return err
			}
			m.fileReady(f.Path, blocksOf(b.Digests, f.Size, bs))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil && !errors.Is(err, ErrMasterCopy) {
			return ctx.Err()
		}
		return err
	}
	return ctx.Err()
}

// WatchMaster follows the read of the master's copy of the release of p
// that the sentry which planned run runID is making: each file's digests
// as they are stored, the verdict as it is recorded. A copy whose reader
// is gone (not seen within lease), or whose run ended, without a verdict
// was not read to the end (ErrMasterUnread).
func (r *Resolver) WatchMaster(ctx context.Context, p *Plan, runID int64, lease time.Duration) (*MasterCopy, error) {
	bs := r.Config.Verify.BlockSize.Bytes()
	keys := digestKeys(p.Files, bs)
	m := newMasterCopy(keys)
	sizes := make(map[store.DigestKey]int64, len(keys))
	for _, f := range p.Files {
		sizes[keys[f.Path]] = f.Size
		if f.Size == 0 {
			m.fileReady(f.Path, checks.Blocks{})
		}
	}
	rel, sha := p.Release.ID, p.Release.ManifestSHA256
	m.poll = func(ctx context.Context) error {
		var pending []store.DigestKey
		paths := map[store.DigestKey][]string{}
		for path, f := range m.files {
			select {
			case <-f.ready:
				continue
			default:
			}
			if paths[f.key] == nil {
				pending = append(pending, f.key)
			}
			paths[f.key] = append(paths[f.key], path)
		}
		have, err := r.Store.BlockDigests(ctx, pending)
		if err != nil {
			return err
		}
		for k, d := range have {
			for _, path := range paths[k] {
				m.fileReady(path, blocksOf(d, sizes[k], bs))
			}
		}
		st, err := r.Store.MasterStatus(ctx, rel, sha, runID, lease)
		if err != nil {
			return err
		}
		switch {
		case st.State == store.MasterOK && !st.Changed:
			m.settle(nil)
		case st.State == store.MasterFailed && !st.Changed:
			m.settle(fmt.Errorf("%w: %s", ErrMasterCopy, st.Detail))
		case st.Changed:
			m.settle(fmt.Errorf("%w: the release's manifest changed while it was primed", ErrMasterUnread))
		case !st.RunRunning:
			m.settle(fmt.Errorf("%w: the prime ended first", ErrMasterUnread))
		case !st.ReaderAlive:
			m.settle(fmt.Errorf("%w: the sentry reading it stopped", ErrMasterUnread))
		case !st.RowsOpen:
			m.settle(fmt.Errorf("%w: the sentry reading it recorded no verdict", ErrMasterUnread))
		}
		return nil
	}
	// What is there already (a copy read by an earlier prime: everything).
	if err := m.pollOnce(ctx); err != nil {
		return nil, err
	}
	return m, nil
}
