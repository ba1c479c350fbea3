// Package testnet hands listening sockets to the servers tests start as
// child processes (nginx, an SMTP server): the test listens on a loopback
// port and passes the socket on (exec.Cmd.ExtraFiles), so connections
// queue in the kernel from the start, and no port is raced for or polled.
package testnet

import (
	"net"
	"os"
	"testing"
)

// Listen opens a TCP listener on 127.0.0.1 and returns it as a file for
// a child's ExtraFiles (close it once the child started), with its
// address.
func Listen(t testing.TB) (*os.File, *net.TCPAddr) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // the duplicate in the file stays open
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	return f, ln.Addr().(*net.TCPAddr)
}
