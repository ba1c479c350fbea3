// Package realmirror starts the mirror software sentry meets in the field —
// nginx serving a tree or caching a master (proxy_cache), lighttpd serving
// a tree, Varnish caching a master and answering PURGE, Squid caching a
// master, Python's http.server — as real processes on loopback, for tests.
//
// A test that needs one calls the Start function with its testing.TB: the
// process is stopped when the test ends (its logs printed when the test
// failed). Without the software installed the test is skipped, except when
// CI is set (.ci/run installs it), where that is a failure.
package realmirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/testnet"
)

// startDeadline bounds how long a server may take to answer its first
// request, generous for a loaded 2-core machine.
const startDeadline = 2 * time.Minute

// Binary finds an installed program by name or at one of paths; without it
// the test skips (pkg names the Debian package), or fails when CI is set.
func Binary(t testing.TB, name, pkg string, paths ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (CI is set: .ci/run installs it with apt-get install %s)", name, pkg)
	}
	t.Skipf("%s is not installed (apt-get install %s); set CI to make this a failure", name, pkg)
	return ""
}

// Server is one running mirror process.
type Server struct {
	// Name is the mirror's name, for messages.
	Name string
	// BaseURL is its bouncer baseurl: http://127.0.0.1:PORT/pub.
	BaseURL string
	// Dir is the process's working directory (configuration, logs,
	// cache).
	Dir string

	cmd    *exec.Cmd
	exited chan struct{}
}

// start runs cmd until the test ends and stops it then with stop (a
// graceful signal), killing it if it does not end.
func start(t testing.TB, name, baseURL, dir string, cmd *exec.Cmd, stop os.Signal, logs ...string) *Server {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	s := &Server{Name: name, BaseURL: baseURL, Dir: dir, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(stop)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
			for _, l := range logs {
				text, _ := os.ReadFile(filepath.Join(dir, l))
				t.Logf("%s %s:\n%s", name, l, text)
			}
		}
	})
	return s
}

// waitAnswers waits until the server answers an HTTP request, or fails
// the test at the deadline or when the process ends first.
func (s *Server) waitAnswers(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startDeadline)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodHead, s.BaseURL+"/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("%s ended before it answered: %v", s.Name, err)
		case <-ctx.Done():
			t.Fatalf("%s did not answer within %s: %v", s.Name, startDeadline, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// NginxOptions say what an nginx mirror does under /pub/.
type NginxOptions struct {
	// Root, when set, is a directory served as the mirror's tree: its
	// files are under /pub/ (Root/firefox/... is /pub/firefox/...).
	Root string
	// Upstream, when set (and Root is not), is the host:port of a master
	// whose /pub/ nginx caches with proxy_cache.
	Upstream string
	// Extra is added to the location block.
	Extra string
}

// StartNginx starts nginx as a mirror (Nginx), on a socket of its own.
func StartNginx(t testing.TB, name string, o NginxOptions) *Server {
	t.Helper()
	if (o.Root == "") == (o.Upstream == "") {
		t.Fatal("realmirror: an nginx mirror needs a Root or an Upstream")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	lf, addr := testnet.Listen(t)
	defer lf.Close()
	location := fmt.Sprintf(`location /pub/ {
            alias %s/;
            %s
        }`, strings.TrimSuffix(o.Root, "/"), o.Extra)
	if o.Root == "" {
		location = fmt.Sprintf(`location /pub/ {
            proxy_pass http://%s;
            proxy_cache mirror;
            proxy_cache_valid 200 1d;
            proxy_cache_lock on;
            %s
        }`, o.Upstream, o.Extra)
	}
	conf := fmt.Sprintf(`    proxy_cache_path %[1]s/cache levels=1:2 keys_zone=mirror:1m max_size=256m inactive=1d use_temp_path=off;
    server {
        listen %[2]s;
        # Maintenance (Server.Maintenance): every request answered 503.
        if (-f %[1]s/maintenance) {
            return 503;
        }
        %[3]s
    }`, dir, addr, location)
	s := Nginx(t, name, dir, conf, []*os.File{lf})
	s.BaseURL = "http://" + addr.String() + "/pub"
	return s
}

// Nginx runs nginx in dir with httpConf (the inside of its http block:
// its servers) listening on the sockets it is handed (fd 3 on, nginx's
// NGINX inheritance: requests queue in the kernel from the start, and no
// port is raced for) until the test ends. Its BaseURL is the caller's to
// set.
func Nginx(t testing.TB, name, dir, httpConf string, sockets []*os.File) *Server {
	t.Helper()
	bin := Binary(t, "nginx", "nginx", "/usr/sbin/nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		// Workers would switch to nobody, who cannot enter the test's
		// temp dirs.
		user = "user root;"
	}
	conf := fmt.Sprintf(`%[2]s
worker_processes 1;
error_log %[1]s/error.log info;
pid %[1]s/nginx.pid;
events { worker_connections 256; }
http {
    # One line a request: method, path, Range, status, body bytes and
    # cache status (Server.AccessLog).
    log_format sentry '$request_method $uri "$http_range" $status $body_bytes_sent $upstream_cache_status';
    access_log %[1]s/access.log sentry;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
%[3]s
}
`, dir, user, httpConf)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	cmd.ExtraFiles = sockets
	fds := make([]string, len(sockets))
	for i := range sockets {
		fds[i] = fmt.Sprint(3 + i)
	}
	cmd.Env = append(os.Environ(), "NGINX="+strings.Join(fds, ";")+";")
	// SIGQUIT: graceful, the workers end too.
	return start(t, name, "", dir, cmd, syscall.SIGQUIT, "error.log")
}

// Signal sends the server's process a signal (SIGHUP: nginx reloads).
func (s *Server) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Children are the ids of the server's processes besides its own (nginx's
// workers, say), as /proc lists them now.
func (s *Server) Children(t testing.TB) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid …: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil && ppid == s.cmd.Process.Pid {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, pid)
		}
	}
	return out
}

// Maintenance switches an nginx mirror's maintenance on (every request
// answered 503, as a mirror under maintenance answers) or off.
func (s *Server) Maintenance(t testing.TB, on bool) {
	t.Helper()
	flag := filepath.Join(s.Dir, "maintenance")
	var err error
	if on {
		err = os.WriteFile(flag, nil, 0o644)
	} else if err = os.Remove(flag); errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	if err != nil {
		t.Fatal(err)
	}
}

// AccessLog reads an nginx mirror's access log, one request a line, its
// fields split: method, path, Range (quoted, "" for none), status, body
// bytes and cache status ("-" for none).
func (s *Server) AccessLog(t testing.TB) [][]string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(s.Dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		if line != "" {
			out = append(out, strings.Fields(line))
		}
	}
	return out
}

// CacheEntries counts the files an nginx proxy_cache mirror keeps.
func (s *Server) CacheEntries(t testing.TB) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(s.Dir, "cache"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// StartVarnish starts Varnish as a pull-through cache of the master at
// upstream (host:port), keeping what it fetched for a day, and answering
// PURGE from loopback (the way Varnish's documentation sets purging up):
// a purged URL is fetched from upstream again on the next request.
func StartVarnish(t testing.TB, name, upstream string) *Server {
	t.Helper()
	bin := Binary(t, "varnishd", "varnish", "/usr/sbin/varnishd")
	host, port, err := net.SplitHostPort(upstream)
	if err != nil {
		t.Fatalf("realmirror: upstream %q: %v", upstream, err)
	}
	dir := t.TempDir()
	vcl := fmt.Sprintf(`vcl 4.1;
backend master { .host = "%s"; .port = "%s"; }
acl purgers { "127.0.0.1"; "::1"; }
sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(405, "purging not allowed"));
        }
        return (purge);
    }
}
sub vcl_backend_response {
    set beresp.ttl = 1d;
}
sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
`, host, port)
	vclPath := filepath.Join(dir, "mirror.vcl")
	if err := os.WriteFile(vclPath, []byte(vcl), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	cmd := exec.Command(bin, "-F", "-j", "none", "-n", work, "-a", addr, "-f", vclPath,
		"-s", "malloc,64m", "-T", "none", "-p", "default_ttl=86400")
	s := start(t, name, "http://"+addr+"/pub", dir, cmd, syscall.SIGTERM)
	s.waitAnswers(t)
	return s
}

// freePort returns a loopback address no one listens on now (varnishd
// opens its own listening socket).
func freePort() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", err
	}
	return addr, nil
}

// ErrNoUpstream is returned by Upstream for a URL without a host.
var ErrNoUpstream = errors.New("no host in the URL")

// Upstream is the host:port of a master's base URL, for StartNginx and
// StartVarnish.
func Upstream(baseURL string) (string, error) {
	rest, ok := strings.CutPrefix(baseURL, "http://")
	if !ok {
		return "", fmt.Errorf("%w: %s (want http://)", ErrNoUpstream, baseURL)
	}
	host, _, _ := strings.Cut(rest, "/")
	if host == "" {
		return "", fmt.Errorf("%w: %s", ErrNoUpstream, baseURL)
	}
	return host, nil
}

// StartLighttpd starts lighttpd serving root as a mirror's tree: its
// files are under /pub/ (root/firefox/... is /pub/firefox/...). lighttpd
// answers at most 10 ranges of a request (the first 10, neighbours
// merged), as it does in the field.
func StartLighttpd(t testing.TB, name, root string) *Server {
	t.Helper()
	bin := Binary(t, "lighttpd", "lighttpd", "/usr/sbin/lighttpd")
	dir := t.TempDir()
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf(`server.modules = ("mod_alias", "mod_accesslog")
server.document-root = %[1]q
server.bind = %[2]q
server.port = %[3]s
server.errorlog = %[4]q
alias.url = ("/pub/" => %[5]q)
mimetype.assign = ("" => "application/octet-stream")
# One line a request: method and path, Range, status, body bytes
# (Server.AccessLog).
accesslog.filename = %[6]q
accesslog.format = "%%m %%U \"%%{Range}i\" %%s %%b"
`, dir, host, port, filepath.Join(dir, "error.log"), strings.TrimSuffix(root, "/")+"/", filepath.Join(dir, "access.log"))
	confPath := filepath.Join(dir, "lighttpd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-D", "-f", confPath)
	s := start(t, name, "http://"+addr+"/pub", dir, cmd, syscall.SIGTERM, "error.log")
	s.waitAnswers(t)
	return s
}

// squids numbers the Squids of this process.
var squids atomic.Int64

// SquidOptions say how a Squid mirror caches its master.
type SquidOptions struct {
	// Upstream is the host:port of the master whose /pub/ Squid caches,
	// as a reverse proxy (accelerator).
	Upstream string
	// RangeOffsetLimit is Squid's range_offset_limit: "-1" makes a range
	// request fetch (and keep) the whole file; "" keeps Squid's default
	// (0: a range is forwarded and nothing is kept).
	RangeOffsetLimit string
}

// StartSquid starts Squid as a pull-through cache of the master at
// o.Upstream, keeping what it fetched for a day; it says X-Cache: MISS or
// HIT. Squid refuses to run as root: as root, it runs as the proxy (or
// nobody) account, which owns its directory.
func StartSquid(t testing.TB, name string, o SquidOptions) *Server {
	t.Helper()
	bin := Binary(t, "squid", "squid", "/usr/sbin/squid")
	host, port, err := net.SplitHostPort(o.Upstream)
	if err != nil {
		t.Fatalf("realmirror: upstream %q: %v", o.Upstream, err)
	}
	dir := t.TempDir()
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		account := "proxy"
		if _, err := osuser.Lookup(account); err != nil {
			account = "nobody"
		}
		u, err := osuser.Lookup(account)
		if err != nil {
			t.Fatalf("realmirror: no account for squid to run as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// Squid's account must reach its directory through the test's
		// temporary ones.
		tmp := filepath.Clean(os.TempDir())
		for d := dir; strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		user = "cache_effective_user " + account
	}
	rol := ""
	if o.RangeOffsetLimit != "" {
		rol = "range_offset_limit " + o.RangeOffsetLimit
	}
	conf := fmt.Sprintf(`http_port %[2]s accel defaultsite=mirror vhost
cache_peer %[3]s parent %[4]s 0 no-query originserver name=master
http_access allow all
cache_peer_access master allow all
cache_dir ufs %[1]s/cache 256 16 256
cache_mem 8 MB
maximum_object_size 1 GB
maximum_object_size_in_memory 64 KB
%[5]s
refresh_pattern . 1440 100%% 10080 override-expire override-lastmod ignore-reload
pid_filename %[1]s/squid.pid
access_log stdio:%[1]s/access.log
cache_log %[1]s/cache.log
cache_store_log none
coredump_dir %[1]s
shutdown_lifetime 1 second
%[6]s
`, dir, addr, host, port, rol, user)
	confPath := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// A service name of its own: Squid's shared memory segments are named
	// after it (/dev/shm/SERVICE-*), and another Squid's must not be
	// taken; they are removed once it ended, however it ended (a cleanup
	// registered before start's runs after it).
	service := fmt.Sprintf("sentry%dx%d", os.Getpid(), squids.Add(1))
	t.Cleanup(func() {
		shm, _ := filepath.Glob("/dev/shm/" + service + "-*")
		for _, f := range shm {
			_ = os.Remove(f)
		}
	})
	if out, err := exec.Command(bin, "-f", confPath, "-n", service, "-N", "-z").CombinedOutput(); err != nil {
		t.Fatalf("squid -z: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-f", confPath, "-n", service, "-N", "-d1")
	s := start(t, name, "http://"+addr+"/pub", dir, cmd, syscall.SIGTERM, "cache.log")
	s.waitAnswers(t)
	return s
}

// StartPythonHTTP starts Python's http.server serving root as a mirror's
// tree (its files under /pub/): a server that honours no range (it
// answers every request with the whole file).
func StartPythonHTTP(t testing.TB, name, root string) *Server {
	t.Helper()
	bin := Binary(t, "python3", "python3", "/usr/bin/python3")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, filepath.Join(tree, "pub")); err != nil {
		t.Fatal(err)
	}
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-m", "http.server", "--bind", host, "--directory", tree, port)
	s := start(t, name, "http://"+addr+"/pub", dir, cmd, syscall.SIGTERM)
	s.waitAnswers(t)
	return s
}
