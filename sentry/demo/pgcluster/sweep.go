package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// maxSweep bounds how many leftover directories one start-up examines.
	maxSweep = 256
	// staleAfter is how old a directory without an owner file must be before
	// it is treated as abandoned (younger ones may be half-created by a
	// concurrently starting test process).
	staleAfter = time.Hour
	// sweepTimeout bounds stopping one leftover cluster.
	sweepTimeout = 30 * time.Second
)

// writeOwner records this process as the owner of a cluster directory:
// "PID STARTTIME\n", the start time (from /proc) guarding against PID reuse.
func writeOwner(path string) error {
	pid := os.Getpid()
	line := fmt.Sprintf("%d %s\n", pid, procStartTime(pid))
	if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
		return fmt.Errorf("record owner process: %w", err)
	}
	return nil
}

// readBounded reads at most limit bytes of the file at path.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// procStartTime returns the start time (in clock ticks since boot, field 22
// of /proc/PID/stat) of process pid, or "" when unknown.
func procStartTime(pid int) string {
	b, err := readBounded("/proc/"+strconv.Itoa(pid)+"/stat", 4096)
	if err != nil {
		return ""
	}
	// The command name (field 2) is parenthesised and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 { // fields[0] is field 3
		return ""
	}
	return fields[19]
}

// ownerState reports whether dir records an owner process and whether that
// process is still alive (same PID and, when recorded, same start time).
func ownerState(dir string) (recorded, alive bool) {
	b, err := readBounded(filepath.Join(dir, ownerFile), 256)
	if err != nil {
		return false, false
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return false, false
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 0 {
		return true, false
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true, false
	}
	// Alive (or EPERM: alive but not ours to signal). A different start
	// time means the PID was reused by an unrelated process.
	if len(fields) >= 2 {
		if cur := procStartTime(pid); cur != "" && cur != fields[1] {
			return true, false
		}
	}
	return true, true
}

// sweepLeftovers stops and removes clusters under base whose directory
// name starts with prefix and whose owner process is gone (typically killed
// by go test's -timeout or by SIGKILL, which skips all cleanup). Only
// directories owned by this user or by the server account are touched; a
// directory without an owner file is left alone until it is staleAfter old,
// because it may belong to a process that is creating it right now.
// Everything is best effort: failures are logged at debug level and never
// fail the caller. Each removed directory is reported to log (may be nil).
func sweepLeftovers(ctx context.Context, base, prefix, bindir string, acct *runAs, log io.Writer) {
	matches, err := filepath.Glob(filepath.Join(base, prefix+"*"))
	if err != nil {
		return
	}
	if len(matches) > maxSweep {
		matches = matches[:maxSweep]
	}
	for _, dir := range matches {
		if ctx.Err() != nil {
			return
		}
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() {
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || !ownedByUs(st.Uid, acct) {
			continue
		}
		recorded, alive := ownerState(dir)
		if alive || (!recorded && time.Since(fi.ModTime()) < staleAfter) {
			continue
		}
		stopLeftover(ctx, bindir, acct, dir)
		if err := os.RemoveAll(dir); err != nil {
			slog.Debug("pgcluster: remove leftover cluster directory", "dir", dir, "err", err)
			continue
		}
		slog.Debug("pgcluster: removed leftover cluster", "dir", dir)
		logf(log, "removed leftover cluster %s", dir)
	}
}

// ownedByUs reports whether a file owned by uid may be a directory this
// user (or, as root, the server account) created.
func ownedByUs(uid uint32, acct *runAs) bool {
	if uid == uint32(os.Geteuid()) {
		return true
	}
	return acct != nil && uid == acct.uid
}

// stopLeftover stops a leftover cluster in dir, if one is running.
func stopLeftover(ctx context.Context, bindir string, acct *runAs, dir string) {
	dataDir := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	if _, err := run(ctx, acct, dir, filepath.Join(bindir, "pg_ctl"),
		"stop", "-w", "-t", "30", "-D", dataDir, "-m", "immediate"); err != nil {
		slog.Debug("pgcluster: stop leftover cluster", "dir", dir, "err", err)
	}
	signalPostmaster(dataDir)
}

// signalPostmaster sends SIGQUIT (immediate shutdown) to the postmaster
// recorded in dataDir/postmaster.pid, but only if that process really is a
// postmaster of dataDir (its working directory is dataDir), so that a stale
// or forged PID file cannot make us signal an unrelated process. It does not
// wait for the process to exit.
func signalPostmaster(dataDir string) {
	b, err := readBounded(filepath.Join(dataDir, "postmaster.pid"), 4096)
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 1 {
		return
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return
	}
	want := dataDir
	if real, err := filepath.EvalSymlinks(dataDir); err == nil {
		want = real
	}
	if cwd != want && cwd != dataDir {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT)
}
