package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrNoServerBinaries is returned (wrapped) by Start when no directory
// holding initdb, pg_ctl and postgres could be found, including when
// SENTRY_PG_BINDIR is set but does not hold all three. Callers typically
// answer it with InstallHint.
var ErrNoServerBinaries = errors.New("pgcluster: no PostgreSQL server binaries (initdb, pg_ctl, postgres) found")

// serverBinaries are the programs a managed cluster needs in one directory.
var serverBinaries = []string{"initdb", "pg_ctl", "postgres"}

// binSearch describes where findBinDir looks; it is a struct so tests can
// point every source at fixtures.
type binSearch struct {
	envDir   string                       // SENTRY_PG_BINDIR, "" when unset
	pgConfig func() string                // returns `pg_config --bindir` or ""
	globRoot string                       // normally /usr/lib/postgresql
	lookPath func(string) (string, error) // normally exec.LookPath
}

// defaultBinSearch is the search used by Start.
func defaultBinSearch() binSearch {
	return binSearch{
		envDir:   os.Getenv(EnvBinDir),
		pgConfig: pgConfigBinDir,
		globRoot: "/usr/lib/postgresql",
		lookPath: exec.LookPath,
	}
}

// findBinDir returns the directory holding the PostgreSQL server binaries.
// Order: SENTRY_PG_BINDIR (which must be complete when set: an explicit but
// wrong setting is an error, not a reason to silently use something else),
// `pg_config --bindir`, the highest version under /usr/lib/postgresql/*/bin,
// then the directory of initdb found on PATH (symlinks resolved, because
// initdb locates postgres next to its real path).
func findBinDir(s binSearch) (string, error) {
	if s.envDir != "" {
		if !hasServerBinaries(s.envDir) {
			return "", fmt.Errorf("%s=%q does not contain %s: %w",
				EnvBinDir, s.envDir, strings.Join(serverBinaries, ", "), ErrNoServerBinaries)
		}
		return s.envDir, nil
	}
	if s.pgConfig != nil {
		if dir := s.pgConfig(); dir != "" && hasServerBinaries(dir) {
			return dir, nil
		}
	}
	if s.globRoot != "" {
		if dir := highestVersionBinDir(s.globRoot); dir != "" {
			return dir, nil
		}
	}
	if s.lookPath != nil {
		if p, err := s.lookPath("initdb"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil && hasServerBinaries(filepath.Dir(real)) {
				return filepath.Dir(real), nil
			}
			if hasServerBinaries(filepath.Dir(p)) {
				return filepath.Dir(p), nil
			}
		}
	}
	return "", ErrNoServerBinaries
}

// hasServerBinaries reports whether dir contains executable initdb, pg_ctl
// and postgres.
func hasServerBinaries(dir string) bool {
	for _, name := range serverBinaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// highestVersionBinDir returns root/<version>/bin for the numerically highest
// version directory that holds the server binaries, or "".
func highestVersionBinDir(root string) string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return ""
	}
	type cand struct {
		ver []int
		dir string
	}
	var cands []cand
	for _, e := range entries {
		ver, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		dir := filepath.Join(root, e.Name(), "bin")
		if hasServerBinaries(dir) {
			cands = append(cands, cand{ver, dir})
		}
	}
	if len(cands) == 0 {
		return ""
	}
	sort.Slice(cands, func(i, j int) bool { return versionLess(cands[j].ver, cands[i].ver) })
	return cands[0].dir
}

// parseVersion parses "15" or "9.6" into its numeric components.
func parseVersion(s string) ([]int, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return nil, false
	}
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 1_000_000 {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

// versionLess reports whether a < b, comparing component by component.
func versionLess(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// pgConfigBinDir runs `pg_config --bindir` with a short timeout and returns
// its trimmed output, or "" on any failure.
func pgConfigBinDir() string {
	path, err := exec.LookPath("pg_config")
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--bindir")
	cmd.Env = childEnv("")
	out, err := cmd.Output()
	if err != nil || len(out) > 4096 {
		return ""
	}
	return strings.TrimSpace(string(out))
}
