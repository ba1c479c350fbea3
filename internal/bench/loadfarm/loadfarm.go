// Package loadfarm is a benchmark-only mirror farm: M mirrors (one loopback
// listener each, as real mirrors are distinct hosts) and a master, serving
// the releases of Options from deterministic synthetic content that is
// generated as it is sent, never stored. Every mirror holds every file of
// every release; a file has the same bytes on every mirror and on the
// master. The master also serves each release's SHA256SUMS, computed once
// when the farm starts.
//
// An optional per-request latency (Options.Latency) makes the mirrors
// latency-bound, like distant mirrors: each answer waits that long before
// its headers. The master never waits. An optional egress cap
// (Options.Egress) shapes what the whole farm sends — every mirror and the
// master share one token bucket — so that bandwidth on sentry's side, not
// CPU, is what limits a run that downloads, as in production. Files answer
// Range requests (one range or several, as multipart/byteranges), and
// mirrors can speak as pull-through caches that fill on first use
// (Options.CacheWords: MISS the first time a file is asked of a mirror,
// HIT after).
//
// The farm can run in this process (Start) or in a child process (Spawn,
// with the child calling ServeProcess), so that a measured sentry process
// and the farm do not share memory or a Go scheduler. It is not for tests
// of behaviour: see sentry/demo/localmirror for that.
package loadfarm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ReleaseSpec describes one synthetic release: Locations × Langs files of
// Size bytes under Dir. File paths are LocationPath with ":lang" replaced
// by Lang(i), so that a bouncer product with the langs Lang(0..Langs-1)
// and the locations Dir+LocationPath(0..Locations-1) maps onto exactly the
// release's files.
type ReleaseSpec struct {
	Name      string `json:"name"`
	Dir       string `json:"dir"` // e.g. "/pub/light/": leading and trailing '/'
	Locations int    `json:"locations"`
	Langs     int    `json:"langs"`
	Size      int64  `json:"size"`
}

// Files is the number of files of the release.
func (r ReleaseSpec) Files() int { return r.Locations * r.Langs }

// LocationPath is the bouncer location path of location i, relative to the
// release directory, with ":lang".
func LocationPath(i int) string { return fmt.Sprintf("os%03d/:lang/file-%03d.bin", i, i) }

// Lang is the name of the i-th synthetic language.
func Lang(i int) string { return fmt.Sprintf("l%03d", i) }

// FilePath is the path of (location, lang) relative to the release directory.
func FilePath(loc, lang int) string {
	return fmt.Sprintf("os%03d/%s/file-%03d.bin", loc, Lang(lang), loc)
}

// Options configures a farm.
type Options struct {
	Mirrors  int           `json:"mirrors"`
	Releases []ReleaseSpec `json:"releases"`
	// Latency is added before the headers of every mirror answer.
	Latency time.Duration `json:"latency"`
	// Seed makes the content; the same seed gives the same bytes.
	Seed uint64 `json:"seed"`
	// Egress, when above 0, caps the bytes per second the whole farm
	// sends (bodies, master and mirrors together).
	Egress float64 `json:"egress"`
	// CacheWords: mirrors say X-Cache-Status: MISS the first time a file
	// is asked of them and HIT after, as caches that keep what they fetch.
	CacheWords bool `json:"cache_words"`
}

// Info is where a farm answers.
type Info struct {
	Master  string   `json:"master"`  // base URL of the master
	Mirrors []string `json:"mirrors"` // base URLs, one per mirror
}

// Stats are counters of the farm since it started (or the last Reset).
type Stats struct {
	Requests int64 `json:"requests"`
	// Bytes are the body bytes sent, by the mirrors and the master;
	// MasterBytes those of the master alone.
	Bytes       int64 `json:"bytes"`
	MasterBytes int64 `json:"master_bytes"`
	// MaxInFlight is the largest number of requests one mirror had in
	// flight at once (over every mirror): sentry's per-mirror cap.
	MaxInFlight int64 `json:"max_in_flight"`
}

// blockLen is the length of the random block every file's bytes are taken
// from: file g of size n is block[(off(g)+i) mod blockLen] for i < n.
const blockLen = 4 << 20

const lastModified = "Mon, 02 Jan 2006 15:04:05 GMT"

type file struct {
	size int64
	off  int
	etag string
}

type mirrorStat struct {
	inFlight, maxInFlight atomic.Int64
	// asked holds the files asked of the mirror (Options.CacheWords).
	asked sync.Map
}

// Farm is a running farm.
type Farm struct {
	Info
	opts      Options
	block     []byte
	files     map[string]*file  // URL path (unescaped) → file
	manifests map[string][]byte // URL path of each SHA256SUMS → body
	servers   []*http.Server
	stats     []*mirrorStat
	requests  atomic.Int64
	bytes     atomic.Int64
	master    atomic.Int64  // the master's share of bytes
	egress    *rate.Limiter // nil: no cap
}

// Start starts a farm in this process.
func Start(o Options) (_ *Farm, err error) {
	if o.Mirrors < 1 {
		return nil, errors.New("loadfarm: at least one mirror")
	}
	f := &Farm{opts: o, files: map[string]*file{}, manifests: map[string][]byte{}}
	if o.Egress > 0 {
		f.egress = rate.NewLimiter(rate.Limit(o.Egress), egressBurst)
	}
	f.block = make([]byte, blockLen)
	rng := rand.New(rand.NewChaCha8(seed32(o.Seed)))
	for i := 0; i+8 <= len(f.block); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			f.block[i+j] = byte(v >> (8 * j))
		}
	}
	if err := f.buildManifests(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	master, err := f.listen(-1)
	if err != nil {
		return nil, err
	}
	f.Master = master
	for i := range o.Mirrors {
		u, err := f.listen(i)
		if err != nil {
			return nil, err
		}
		f.Mirrors = append(f.Mirrors, u)
	}
	return f, nil
}

func seed32(s uint64) [32]byte {
	var b [32]byte
	for i := range 4 {
		v := s*0x9e3779b97f4a7c15 + uint64(i)*0xbf58476d1ce4e5b9
		for j := range 8 {
			b[8*i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// buildManifests lays out every file and hashes it, once, on every core.
func (f *Farm) buildManifests() error {
	g := 0
	type job struct {
		fl   *file
		line *string
	}
	var jobs []job
	lines := map[string][]string{}
	for _, r := range f.opts.Releases {
		if !strings.HasPrefix(r.Dir, "/") || !strings.HasSuffix(r.Dir, "/") || r.Size < 0 {
			return fmt.Errorf("loadfarm: release %q: bad dir or size", r.Name)
		}
		ls := make([]string, r.Files())
		k := 0
		for loc := range r.Locations {
			for lang := range r.Langs {
				p := FilePath(loc, lang)
				fl := &file{size: r.Size, off: int((uint64(g) * 2654435761) % blockLen)}
				g++
				f.files[r.Dir+p] = fl
				ls[k] = p
				jobs = append(jobs, job{fl, &ls[k]})
				k++
			}
		}
		lines[r.Dir] = ls
	}
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				h := sha256.New()
				f.write(h, jobs[i].fl)
				sum := hex.EncodeToString(h.Sum(nil))
				jobs[i].fl.etag = `"` + sum[:16] + `"`
				*jobs[i].line = sum + "  " + *jobs[i].line
			}
		}()
	}
	wg.Wait()
	for dir, ls := range lines {
		f.manifests[dir+"SHA256SUMS"] = []byte(strings.Join(ls, "\n") + "\n")
	}
	return nil
}

// write sends the file's bytes to w.
func (f *Farm) write(w io.Writer, fl *file) (int64, error) {
	var n int64
	off := fl.off
	for n < fl.size {
		chunk := min(int64(len(f.block)-off), fl.size-n, 256<<10)
		m, err := w.Write(f.block[off : off+int(chunk)])
		n += int64(m)
		if err != nil {
			return n, err
		}
		off = (off + m) % len(f.block)
	}
	return n, nil
}

func (f *Farm) listen(mirror int) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	st := &mirrorStat{}
	if mirror >= 0 {
		f.stats = append(f.stats, st)
	}
	srv := &http.Server{Handler: f.handler(mirror, st), ReadHeaderTimeout: time.Minute}
	f.servers = append(f.servers, srv)
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

func (f *Farm) handler(mirror int, st *mirrorStat) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mirror < 0 {
			switch r.URL.Path {
			case "/_farm/stats":
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(f.Stats())
				return
			case "/_farm/reset":
				f.Reset()
				return
			}
			if b, ok := f.manifests[r.URL.Path]; ok {
				w.Header().Set("Content-Length", strconv.Itoa(len(b)))
				f.shaped(w, r, mirror).Write(b)
				return
			}
		} else {
			n := st.inFlight.Add(1)
			defer st.inFlight.Add(-1)
			for {
				m := st.maxInFlight.Load()
				if n <= m || st.maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			if d := f.opts.Latency; d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-r.Context().Done():
					t.Stop()
					return
				}
			}
		}
		f.requests.Add(1)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		fl, ok := f.files[r.URL.Path]
		if !ok {
			if mirror >= 0 && (r.URL.Path == "/" || r.URL.Path == "") {
				w.WriteHeader(http.StatusOK) // the base URL answers (Reachable)
				return
			}
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h["Etag"] = []string{fl.etag}
		h["Last-Modified"] = []string{lastModified}
		h["Content-Type"] = []string{"application/octet-stream"}
		if mirror >= 0 && f.opts.CacheWords {
			if _, asked := st.asked.LoadOrStore(r.URL.Path, true); asked {
				h["X-Cache-Status"] = []string{"HIT"}
			} else {
				h["X-Cache-Status"] = []string{"MISS"}
			}
		}
		if inm := r.Header.Get("If-None-Match"); inm != "" && inm == fl.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		sw := f.shaped(w, r, mirror)
		if r.Header.Get("Range") != "" && r.Method == http.MethodGet {
			// One range or several (multipart/byteranges), 416, as Go's
			// file server answers them, from the generated bytes.
			http.ServeContent(sw, r, "", time.Time{}, &reader{f: f, fl: fl})
			return
		}
		h["Content-Length"] = []string{strconv.FormatInt(fl.size, 10)}
		if r.Method == http.MethodHead {
			return
		}
		f.write(sw, fl)
	})
}

// count adds n body bytes sent by mirror (-1: the master).
func (f *Farm) count(mirror int, n int64) {
	f.bytes.Add(n)
	if mirror < 0 {
		f.master.Add(n)
	}
}

// egressBurst is the egress bucket's depth: no write waits for more.
const egressBurst = 256 << 10

// shapedWriter is a response writer whose body bytes are counted and,
// with an egress cap, wait for the farm's token bucket.
type shapedWriter struct {
	http.ResponseWriter
	f      *Farm
	mirror int
	r      *http.Request
}

// shaped is w for the answer of mirror (-1: the master) to r. Bytes are
// counted before they leave, so that a client that has read them finds
// them in the counters.
func (f *Farm) shaped(w http.ResponseWriter, r *http.Request, mirror int) *shapedWriter {
	return &shapedWriter{ResponseWriter: w, f: f, mirror: mirror, r: r}
}

func (w *shapedWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		chunk := p[done:min(len(p), done+egressBurst)]
		if lim := w.f.egress; lim != nil {
			if err := lim.WaitN(w.r.Context(), len(chunk)); err != nil {
				return done, err
			}
		}
		w.f.count(w.mirror, int64(len(chunk)))
		n, err := w.ResponseWriter.Write(chunk)
		done += n
		if err != nil {
			w.f.count(w.mirror, int64(n-len(chunk)))
			return done, err
		}
	}
	return done, nil
}

// reader reads a file's generated bytes, seekably (http.ServeContent).
type reader struct {
	f   *Farm
	fl  *file
	pos int64
}

func (r *reader) Read(p []byte) (int, error) {
	if r.pos >= r.fl.size {
		return 0, io.EOF
	}
	off := (r.fl.off + int(r.pos%int64(blockLen))) % blockLen
	n := copy(p[:min(int64(len(p)), r.fl.size-r.pos)], r.f.block[off:])
	r.pos += int64(n)
	return n, nil
}

func (r *reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.fl.size
	}
	if offset < 0 {
		return 0, errors.New("loadfarm: seek before the start")
	}
	r.pos = offset
	return offset, nil
}

// Stats returns the counters.
func (f *Farm) Stats() Stats {
	s := Stats{Requests: f.requests.Load(), Bytes: f.bytes.Load(), MasterBytes: f.master.Load()}
	for _, st := range f.stats {
		s.MaxInFlight = max(s.MaxInFlight, st.maxInFlight.Load())
	}
	return s
}

// Reset zeroes the counters.
func (f *Farm) Reset() {
	f.requests.Store(0)
	f.bytes.Store(0)
	f.master.Store(0)
	for _, st := range f.stats {
		st.maxInFlight.Store(0)
		st.asked.Clear()
	}
}

// Manifest returns the SHA256SUMS of the release in dir.
func (f *Farm) Manifest(dir string) []byte { return f.manifests[dir+"SHA256SUMS"] }

// Close stops every listener.
func (f *Farm) Close() error {
	var errs []error
	for _, s := range f.servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// ServeProcess is the body of a farm child process: it decodes Options from
// spec (JSON), starts the farm, writes its Info as one JSON line to out and
// serves until in reaches EOF (the parent closed the pipe or died).
func ServeProcess(spec string, in io.Reader, out io.Writer) error {
	var o Options
	if err := json.Unmarshal([]byte(spec), &o); err != nil {
		return fmt.Errorf("loadfarm: options: %w", err)
	}
	f, err := Start(o)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := json.NewEncoder(out).Encode(f.Info); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, in)
	return nil
}

// Remote is a farm running in a child process.
type Remote struct {
	Info
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// Spawn starts a farm in a child process: exe with args, which must call
// ServeProcess with the JSON it is given as its last argument, its stdin
// and stdout. The child stops when Close closes its stdin (or this process
// dies).
func Spawn(ctx context.Context, exe string, args []string, o Options) (*Remote, error) {
	spec, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append(append([]string(nil), args...), string(spec))...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &Remote{cmd: cmd, stdin: stdin}
	line := make(chan error, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		s.Buffer(make([]byte, 1<<20), 16<<20)
		if !s.Scan() {
			line <- fmt.Errorf("loadfarm: the farm process said nothing (%v)", s.Err())
			return
		}
		line <- json.Unmarshal(s.Bytes(), &r.Info)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case err = <-line:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// PID is the farm process's id.
func (r *Remote) PID() int { return r.cmd.Process.Pid }

// Stats asks the farm for its counters.
func (r *Remote) Stats() (Stats, error) {
	var s Stats
	resp, err := http.Get(r.Master + "/_farm/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// Reset zeroes the farm's counters.
func (r *Remote) Reset() error {
	resp, err := http.Get(r.Master + "/_farm/reset")
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Close stops the farm process and waits for it.
func (r *Remote) Close() error {
	r.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		return <-done
	}
}
