package realmirror

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

// DualStack is a dual-stack mirror on loopback made of two nginx
// processes, one answering on 127.0.0.1:Port and one on [::1]:Port, each
// serving a tree of its own under /pub/: a second server behind the
// AAAA record. Port is the same for both, so one host name resolving to
// both addresses (checks.ClientOptions.Resolver) names the mirror.
type DualStack struct {
	Port int
	// V4 and V6 are the servers; V6 is nil when Root6 was "": nothing
	// listens on [::1]:Port, and connections over IPv6 are refused.
	V4, V6 *Server
}

// StartDualStackNginx starts nginx serving root4 on 127.0.0.1:PORT and,
// unless root6 is "", another nginx serving root6 on [::1]:PORT. A test on
// a host without an IPv6 loopback should have skipped before.
func StartDualStackNginx(t testing.TB, name, root4, root6 string) *DualStack {
	t.Helper()
	var v4, v6 *os.File
	var port int
	// The port 127.0.0.1 gave may be taken on ::1: try a few.
	for try := 0; ; try++ {
		ln4, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln4.Addr().(*net.TCPAddr).Port
		ln6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
		if err != nil {
			ln4.Close()
			if try < 20 {
				continue
			}
			t.Fatalf("no port free on both 127.0.0.1 and ::1: %v", err)
		}
		if v4, err = ln4.(*net.TCPListener).File(); err != nil {
			t.Fatal(err)
		}
		ln4.Close()
		if root6 != "" {
			if v6, err = ln6.(*net.TCPListener).File(); err != nil {
				t.Fatal(err)
			}
		}
		ln6.Close() // without root6: nothing listens on [::1]:PORT
		break
	}
	d := &DualStack{Port: port}
	d.V4 = staticNginx(t, name+" (IPv4)", root4, "127.0.0.1:"+strconv.Itoa(port), v4)
	if root6 != "" {
		d.V6 = staticNginx(t, name+" (IPv6)", root6, "[::1]:"+strconv.Itoa(port), v6)
	}
	return d
}

// staticNginx starts nginx serving root under /pub/ on the socket it is
// handed, listening at addr, and waits until it answers.
func staticNginx(t testing.TB, name, root, addr string, socket *os.File) *Server {
	t.Helper()
	defer socket.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf(`    server {
        listen %s;
        location /pub/ {
            alias %s/;
        }
    }`, addr, strings.TrimSuffix(root, "/"))
	s := Nginx(t, name, dir, conf, []*os.File{socket})
	s.BaseURL = "http://" + addr + "/pub"
	s.waitAnswers(t)
	return s
}

// DualResolver resolves host names for checks.ClientOptions.Resolver, so
// that a test names dual-stack mirrors on loopback without /etc/hosts:
// every *.dual.test name to 127.0.0.1 and ::1 (StartDualStackNginx), every
// *.v4.test name to 127.0.0.1 alone (a single-stack mirror).
func DualResolver(_ context.Context, host string) ([]netip.Addr, error) {
	switch {
	case strings.HasSuffix(host, ".dual.test"):
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
	case strings.HasSuffix(host, ".v4.test"):
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// NeedIPv6Loopback skips a test on a host without an IPv6 loopback (::1).
func NeedIPv6Loopback(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("this host has no IPv6 loopback (::1): %v", err)
	}
	ln.Close()
}
