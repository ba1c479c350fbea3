package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/semaphore"
)

// job is one file on one mirror.
type job struct {
	url  string
	size int64
	hash string // hex sha256; "" for a HEAD
}

// bareResult is what a bare client run did.
type bareResult struct {
	checks int64
	bytes  int64
	bad    int64 // wrong status, size or hash
	wall   time.Duration
}

// bareClient does the same requests as sentry at the same concurrency (a
// global cap and a per-mirror cap) with nothing else: no retries, no
// bookkeeping, no database. perMirror lists each mirror's jobs.
func bareClient(ctx context.Context, perMirror [][]job, global, perMirrorCap int, get bool) bareResult {
	tr := &http.Transport{
		Proxy:               nil,
		DisableCompression:  true,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	sem := semaphore.NewWeighted(int64(global))
	var res bareResult
	var checks, bytes, bad atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, jobs := range perMirror {
		next := atomic.Int64{}
		for range min(perMirrorCap, len(jobs)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 128<<10)
				for {
					i := int(next.Add(1)) - 1
					if i >= len(jobs) {
						return
					}
					if sem.Acquire(ctx, 1) != nil {
						return
					}
					n, ok := bareOne(ctx, hc, jobs[i], get, buf)
					sem.Release(1)
					checks.Add(1)
					bytes.Add(n)
					if !ok {
						bad.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	res.wall = time.Since(start)
	res.checks, res.bytes, res.bad = checks.Load(), bytes.Load(), bad.Load()
	return res
}

func bareOne(ctx context.Context, hc *http.Client, j job, get bool, buf []byte) (int64, bool) {
	method := http.MethodHead
	if get {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, j.url, nil)
	if err != nil {
		return 0, false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != j.size {
		return 0, false
	}
	if !get {
		return 0, true
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, io.LimitReader(resp.Body, j.size+1), buf)
	if err != nil || n != j.size {
		return n, false
	}
	return n, hex.EncodeToString(h.Sum(nil)) == j.hash
}

// shellPipeline is what an operator would write: one `curl -s URL |
// sha256sum` per file under xargs -P parallel, then a comparison of the
// sums with the manifest (not timed).
func shellPipeline(ctx context.Context, dir string, jobs []job, parallel int) (bareResult, error) {
	var list strings.Builder
	want := map[string]string{}
	for _, j := range jobs {
		fmt.Fprintln(&list, j.url)
		want[j.url] = j.hash
	}
	urls := dir + "/urls.txt"
	if err := os.WriteFile(urls, []byte(list.String()), 0o644); err != nil {
		return bareResult{}, err
	}
	cmd := exec.CommandContext(ctx, "sh", "-c",
		fmt.Sprintf(`xargs -P %d -n 1 sh -c 'printf "%%s %%s\n" "$(curl -s "$0" | sha256sum | cut -d" " -f1)" "$0"' < %s`, parallel, urls))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	start := time.Now()
	err := cmd.Run()
	res := bareResult{wall: time.Since(start)}
	if err != nil {
		return res, err
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		sum, u, _ := strings.Cut(line, " ")
		res.checks++
		if want[u] == sum {
			res.bytes += jobs[0].size
		} else {
			res.bad++
		}
	}
	return res, nil
}

// childResult is a measured sentry process.
type childResult struct {
	wall    time.Duration
	maxRSS  int64 // bytes
	cpu     time.Duration
	stdout  []byte
	exit    int
	runErr  error
	command string
}

// runChild runs the sentry binary and measures it: wall time, peak RSS
// (rusage of the child: its VmHWM), CPU time.
func runChild(ctx context.Context, logw io.Writer, bin string, args ...string) childResult {
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = logw
	r := childResult{command: bin + " " + strings.Join(args, " ")}
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		// rusage's maxrss of a child counts the parent's memory it was
		// forked from (Linux records the old mm's high-water mark at
		// exec), so the peak is read from the child's own VmHWM instead,
		// polled until it exits (the mark only grows).
		done := make(chan struct{})
		go func() {
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				if hwm := vmHWM(cmd.Process.Pid); hwm > r.maxRSS {
					r.maxRSS = hwm
				}
				select {
				case <-done:
					return
				case <-t.C:
				}
			}
		}()
		err = cmd.Wait()
		r.wall = time.Since(start)
		done <- struct{}{}
	}
	r.stdout = out.Bytes()
	if cmd.ProcessState != nil {
		r.exit = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if err != nil && r.exit == 0 {
		r.runErr = err
	}
	return r
}

// vmHWM is the peak resident set of a live process, in bytes (0 when it
// cannot be read).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

// sha256Rate hashes in memory: bytes per second on one core and on all.
func sha256Rate() (one, all float64) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	run := func(n int) float64 {
		const per = 512 // MiB per goroutine
		var wg sync.WaitGroup
		start := time.Now()
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := sha256.New()
				for range per {
					h.Write(buf)
				}
				h.Sum(nil)
			}()
		}
		wg.Wait()
		return float64(n*per<<20) / time.Since(start).Seconds()
	}
	run(1) // warm up
	return run(1), run(runtime.NumCPU())
}

// selfCPU is the CPU time this process has used so far (user and
// system): around a bare client run, what the client cost, since nothing
// else runs in this process then (the farm and PostgreSQL are children).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// median is the middle of xs (the mean of the middle two for an even
// count; 0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// ProfileCPU starts a CPU profile of this process into path and returns
// what stops it (and closes the file): the bare client's run here, a
// profiled sentry in sentry-bench's "sentry-profiled" mode.
func ProfileCPU(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// profileSelf is ProfileCPU into dir/name.pprof, beside sentry's
// profiles; a no-op when dir is "" or the profile cannot start (the
// figure is measured all the same).
func profileSelf(dir, name string) (stop func()) {
	if dir != "" {
		if stop, err := ProfileCPU(filepath.Join(dir, name+".pprof")); err == nil {
			return stop
		}
	}
	return func() {}
}
