package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoServerAccount is returned (wrapped) by Start when the process runs as
// root and there is no usable unprivileged account to run the server: initdb
// refuses to run as root, so as root the programs run as the `postgres`
// system account, which must exist and must not have uid 0.
var ErrNoServerAccount = errors.New("pgcluster: running as root needs the 'postgres' system account to run the server")

// maxCmdOutput bounds how much of a child's output is kept for messages.
const maxCmdOutput = 64 << 10

// runAs identifies the account the PostgreSQL programs run under. A nil
// *runAs means "the current user".
type runAs struct {
	uid, gid uint32
	name     string
}

// credential returns the SysProcAttr credential for r, or nil for the
// current user.
func (r *runAs) credential() *syscall.SysProcAttr {
	if r == nil {
		return nil
	}
	// Groups is empty on purpose: the child gets no supplementary groups
	// of root.
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: r.uid, Gid: r.gid, Groups: []uint32{}}}
}

// chown gives path to r; a no-op for the current user.
func (r *runAs) chown(path string) error {
	if r == nil {
		return nil
	}
	if err := os.Lchown(path, int(r.uid), int(r.gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, r.name, err)
	}
	return nil
}

// serverAccount decides who runs initdb/pg_ctl/postgres. initdb refuses to
// run as root, so as root the `postgres` system account is used; otherwise
// the current user (nil).
func serverAccount() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoServerAccount, err)
	}
	return parseAccount(u)
}

// parseAccount converts an os/user entry into a runAs.
func parseAccount(u *user.User) (*runAs, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse uid %q of %s: %w", u.Uid, u.Username, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse gid %q of %s: %w", u.Gid, u.Username, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("%w: account %s has uid 0 and initdb refuses to run as root", ErrNoServerAccount, u.Username)
	}
	return &runAs{uid: uint32(uid), gid: uint32(gid), name: u.Username}, nil
}

// childEnv is the complete environment of every child process: an
// allowlist, so nothing such as PGPASSWORD, PGHOST, PGDATA, PGOPTIONS or
// SENTRY_TEST_DATABASE_URL leaks into (or changes the behaviour of) initdb,
// pg_ctl or the server.
func childEnv(home string) []string {
	env := []string{"LC_ALL=C", "LANG=C"}
	for _, k := range []string{"PATH", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if home != "" {
		env = append(env, "HOME="+home)
	}
	return env
}

// limitedBuffer keeps at most maxCmdOutput bytes and silently drops the rest.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxCmdOutput - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// run executes bin with args as account acct in directory dir and returns
// its combined, bounded output. The error, if any, includes that output.
func run(ctx context.Context, acct *runAs, dir, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = childEnv(dir)
	cmd.SysProcAttr = acct.credential()
	var out limitedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// pg_ctl start leaves a postmaster behind; should it ever keep the
	// output pipe open, do not wait for it forever.
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if err != nil {
		return text, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, text)
	}
	return text, nil
}
