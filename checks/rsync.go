package checks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Listing an rsync mirror.
//
// A mirror that offers rsync can list a whole release tree, with sizes and
// times, in one connection: sentry's light sweep asks for it instead of a
// HEAD per file (package sweep decides what still needs HTTP). The lister
// runs the rsync client (Debian's `rsync`: the reference implementation of
// a protocol with several versions and many daemon options; writing one
// would add risk and no benefit), bounded like every other check: a
// connect timeout, an I/O timeout, a cap on the entries it reads, and the
// check's context, which kills it.

// ErrRsync is wrapped by every error of ListRsync: the listing could not be
// had (refused, unknown module, timeout, too long, no rsync client). A sweep
// then checks the mirror over HTTP: it is not a fact about the mirror's
// files.
var ErrRsync = errors.New("rsync listing failed")

// RsyncOptions configure ListRsync.
type RsyncOptions struct {
	// Binary is the rsync client. Default "rsync" (found on PATH).
	Binary string
	// ConnectTimeout bounds connecting to the daemon (--contimeout);
	// IOTimeout bounds each wait for data (--timeout). Defaults 10s and
	// 30s.
	ConnectTimeout, IOTimeout time.Duration
	// MaxEntries bounds the lines read; a longer listing is an error.
	// Default 1,000,000.
	MaxEntries int
	// MaxNameLength bounds a listed name, in bytes (as printed, escapes
	// included); a longer one is an error. Default 4096 (PATH_MAX).
	MaxNameLength int
	// Want, when set, says which names to keep: the listing holds only
	// those (the files of the releases a sweep checks), so that what it
	// holds is bounded by what the caller asked for, whatever the daemon
	// lists. nil keeps every regular file.
	Want func(name string) bool
	// SourceAddress, when set, is the local address to connect from
	// (--address), as ClientOptions.SourceAddress.
	SourceAddress string
}

// Listed is one regular file of a listing.
type Listed struct {
	Size int64
	// MTime is the modification time as the daemon printed it (its own
	// local time): compared with the previous listing, never parsed.
	MTime string
}

// Fact is what a listing says of a file, as sentry records it to compare
// with the next listing: "size mtime".
func (l Listed) Fact() string { return strconv.FormatInt(l.Size, 10) + " " + l.MTime }

// CheckRsyncURL is the rule of an rsync URL (a mirror's
// sentry_mirror_settings.rsync_url, and every source ListRsync lists):
// rsync://HOST/MODULE..., the daemon's host and a module. `sentry mirror
// set` applies it before writing a mirror's.
func CheckRsyncURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "rsync" || u.Host == "" {
		return fmt.Errorf("not an rsync://HOST/MODULE URL")
	}
	if strings.Trim(u.Path, "/") == "" {
		return fmt.Errorf("names no module (rsync://HOST/MODULE)")
	}
	return nil
}

// RsyncSource is a directory to list under a mirror's rsync URL.
func RsyncSource(rsyncURL, dir string) string {
	return strings.TrimRight(rsyncURL, "/") + "/./" + strings.Trim(dir, "/") + "/"
}

// listLine is a line of `rsync --list-only`: permissions, size, date, time,
// name (the rest of the line). listPrefix bounds what comes before the
// name: ten permission characters, spaces, a size of up to 20 digits and
// the date and time.
const listPrefix = 64

// listLine matches a listing's line.
var listLine = regexp.MustCompile(`^([-dlpscbD])[-rwxsStT]{9}\s+(\d+) (\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) (.+)$`)

// ListRsync lists the regular files under sources (RsyncSource URLs of one
// daemon) in one rsync connection. Names are relative to the "/./" of each
// source: "firefox/releases/1.5/win32/Firefox Setup 1.5.exe". A source the
// daemon does not have lists nothing (its files are then missing); every
// other refusal is an error wrapping ErrRsync.
func ListRsync(ctx context.Context, o RsyncOptions, sources []string) (map[string]Listed, error) {
	if len(sources) == 0 {
		return map[string]Listed{}, nil
	}
	if o.Binary == "" {
		o.Binary = "rsync"
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = 30 * time.Second
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 1_000_000
	}
	if o.MaxNameLength <= 0 {
		o.MaxNameLength = 4096
	}
	host := ""
	for i, s := range sources {
		if CheckRsyncURL(s) != nil {
			return nil, fmt.Errorf("%w: source %d is not an rsync:// URL", ErrRsync, i)
		}
		u, _ := url.Parse(s)
		if host == "" {
			host = u.Host
		} else if u.Host != host {
			return nil, fmt.Errorf("%w: sources on two daemons (%s, %s)", ErrRsync, host, u.Host)
		}
	}
	// An empty destination: with several sources rsync wants one, and
	// --list-only writes nothing to it.
	dest, err := os.MkdirTemp("", "sentry-rsync-")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRsync, err)
	}
	defer os.RemoveAll(dest)
	args := []string{"--list-only", "--recursive", "--relative", "--no-human-readable", "--8-bit-output", "--no-motd",
		fmt.Sprintf("--contimeout=%d", max(1, int(o.ConnectTimeout.Seconds()))),
		fmt.Sprintf("--timeout=%d", max(1, int(o.IOTimeout.Seconds())))}
	if o.SourceAddress != "" {
		args = append(args, "--address="+o.SourceAddress)
	}
	args = append(append(args, sources...), dest+"/")
	cmd := exec.CommandContext(ctx, o.Binary, args...)
	cmd.Env = append(os.Environ(), "RSYNC_PASSWORD=") // never prompt
	cmd.Stdin = nil
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4 << 10}
	// Once the client has exited (or been killed), its output is waited
	// for this long at most: a process it started may hold the pipes.
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRsync, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRsync, err)
	}
	listing := map[string]Listed{}
	sc := bufio.NewScanner(out)
	// A line is the name and at most listPrefix bytes before it.
	maxLine := o.MaxNameLength + listPrefix
	sc.Buffer(make([]byte, 0, min(maxLine+1, 64<<10)), maxLine+1)
	lines := 0
	var stop error // why the listing was cut short
	for sc.Scan() {
		if lines++; lines > o.MaxEntries {
			stop = fmt.Errorf("more than %d entries", o.MaxEntries)
			break
		}
		m := listLine.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != "-" {
			continue // directories, links, devices: not files sentry can take the size of
		}
		if len(m[4]) > o.MaxNameLength {
			stop = fmt.Errorf("a name of %d bytes, longer than %d", len(m[4]), o.MaxNameLength)
			break
		}
		size, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			continue
		}
		name := unescapeRsync(m[4])
		if o.Want != nil && !o.Want(name) {
			continue
		}
		listing[name] = Listed{Size: size, MTime: m[3]}
	}
	if err := sc.Err(); err != nil && stop == nil {
		if errors.Is(err, bufio.ErrTooLong) {
			stop = fmt.Errorf("a line longer than %d bytes (a name longer than %d)", maxLine, o.MaxNameLength)
		} else {
			stop = err
		}
	}
	if stop != nil {
		_ = cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%w: %w", ErrRsync, ctx.Err())
	case stop != nil:
		return nil, fmt.Errorf("%w: %v", ErrRsync, stop)
	}
	var exit *exec.ExitError
	if errors.As(waitErr, &exit) && (exit.ExitCode() == 23 || exit.ExitCode() == 24) && lines > 0 {
		// Some sources are not there (or vanished): the rest is listed.
		return listing, nil
	}
	if waitErr != nil {
		return nil, fmt.Errorf("%w: %v: %s", ErrRsync, waitErr, clip(strings.TrimSpace(stderr.String()), 300))
	}
	return listing, nil
}

// unescapeRsync undoes rsync's escaping of unprintable bytes in names
// ("\#012"); other backslashes are literal.
func unescapeRsync(s string) string {
	if !strings.Contains(s, `\#`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+5 <= len(s) && s[i+1] == '#' {
			if v, err := strconv.ParseUint(s[i+2:i+5], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 4
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w *strings.Builder
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
