package localmirror

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rsyncd is a real `rsync --daemon` on loopback, serving one read-only
// module, for the tests of rsync listings.
type Rsyncd struct {
	// URL is the module's URL, rsync://127.0.0.1:PORT/NAME: the
	// counterpart of a mirror's base URL (its release directories are
	// under it).
	URL string

	cmd    *exec.Cmd
	dir    string
	log    string
	done   chan error
	closed sync.Once
}

// ErrNoRsync is returned by StartRsyncd when no rsync is installed.
var ErrNoRsync = errors.New("rsync is not installed (Debian package rsync)")

// StartRsyncd serves dir as module name until Close.
func StartRsyncd(name, dir string) (_ *Rsyncd, err error) {
	bin, err := exec.LookPath("rsync")
	if err != nil {
		return nil, ErrNoRsync
	}
	conf, err := os.MkdirTemp("", "sentry-rsyncd-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(conf) // nothing of a daemon that did not start is left
		}
	}()
	// A port free now; the daemon binds it at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d := &Rsyncd{dir: conf, log: filepath.Join(conf, "rsyncd.log"), done: make(chan error, 1),
		URL: fmt.Sprintf("rsync://127.0.0.1:%d/%s", port, name)}
	cfg := fmt.Sprintf("use chroot = no\nuid = %d\ngid = %d\nlog file = %s\npid file = %s\nreuse port = yes\n\n[%s]\npath = %s\nread only = yes\nlist = yes\n",
		os.Getuid(), os.Getgid(), d.log, filepath.Join(conf, "rsyncd.pid"), name, dir)
	if err := os.WriteFile(filepath.Join(conf, "rsyncd.conf"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	d.cmd = exec.Command(bin, "--daemon", "--no-detach", "--config="+filepath.Join(conf, "rsyncd.conf"),
		"--address=127.0.0.1", "--port="+strconv.Itoa(port))
	d.cmd.Stderr = &stderr
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.done <- d.cmd.Wait() }()
	// Ready when it accepts a connection.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-d.done:
			return nil, fmt.Errorf("rsync --daemon exited: %v: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			d.Close()
			return nil, fmt.Errorf("rsync --daemon did not listen on %d: %s", port, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d, nil
}

// Connections counts the clients that asked for the module (the daemon
// logs each session), the readiness probe of StartRsyncd excepted.
func (d *Rsyncd) Connections() int {
	b, _ := os.ReadFile(d.log)
	return strings.Count(string(b), "rsync allowed access on module")
}

// Close stops the daemon; closing again does nothing.
func (d *Rsyncd) Close() {
	d.closed.Do(func() {
		if d.cmd.Process != nil {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		os.RemoveAll(d.dir)
	})
}
