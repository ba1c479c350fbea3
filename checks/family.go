package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
)

// Family is an address family a mirror is checked over.
type Family string

// The families.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// Label is the family as people write it: IPv4, IPv6.
func (f Family) Label() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return string(f)
}

func familyOfAddr(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

type familyKey struct{}

// WithFamily returns a context whose requests connect over family f only:
// to the host's addresses of that family. Connections are pooled per
// family, so a connection made over one is never reused for the other.
func WithFamily(ctx context.Context, f Family) context.Context {
	return context.WithValue(ctx, familyKey{}, f)
}

// FamilyOf is the family ctx restricts connections to (WithFamily), ""
// for none.
func FamilyOf(ctx context.Context) Family {
	f, _ := ctx.Value(familyKey{}).(Family)
	return f
}

// Families returns the address families of the host of rawURL, IPv4
// first: those of the address itself for an IP literal, else those its
// A and AAAA records give (through ClientOptions.Resolver when set).
func (c *Client) Families(ctx context.Context, rawURL string) ([]Family, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no host in the URL", ErrInvalidTarget)
	}
	addrs, err := c.lookup(ctx, u.Hostname())
	if err != nil {
		return nil, err
	}
	var v4, v6 bool
	for _, a := range addrs {
		switch familyOfAddr(a) {
		case IPv4:
			v4 = true
		case IPv6:
			v6 = true
		}
	}
	var out []Family
	if v4 {
		out = append(out, IPv4)
	}
	if v6 {
		out = append(out, IPv6)
	}
	return out, nil
}

// lookup resolves host: an IP literal is its own address.
func (c *Client) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	var addrs []netip.Addr
	var err error
	if c.opts.Resolver != nil {
		addrs, err = c.opts.Resolver(ctx, host)
	} else {
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	if err != nil {
		var de *net.DNSError
		if !errors.As(err, &de) {
			err = &net.DNSError{Err: clip(err.Error(), 100), Name: host}
		}
		return nil, err
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// familyDial wraps the transport's dialer: a connection whose context
// names a family (WithFamily), or any connection when a Resolver is set,
// resolves the host itself and dials its addresses (of that family) in
// turn; others go to base as they are (the system resolves, and picks).
func (c *Client) familyDial(base dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		fam := FamilyOf(ctx)
		if fam == "" && c.opts.Resolver == nil {
			return base(ctx, network, addr)
		}
		host, port, addrs, err := c.resolveAddr(ctx, addr)
		if err != nil {
			return nil, err
		}
		var of []netip.Addr
		for _, a := range addrs {
			if fam == "" || familyOfAddr(a) == fam {
				of = append(of, a)
			}
		}
		if len(of) == 0 {
			return nil, &net.DNSError{Err: fmt.Sprintf("no %s address", fam.Label()), Name: host, IsNotFound: true}
		}
		return dialInTurn(ctx, of, port, func(ctx context.Context, a netip.Addr, hostport string) (net.Conn, error) {
			nw := "tcp4"
			if familyOfAddr(a) == IPv6 {
				nw = "tcp6"
			}
			return base(ctx, nw, hostport)
		})
	}
}

// resolveAddr splits addr (host:port) and resolves its host (lookup).
func (c *Client) resolveAddr(ctx context.Context, addr string) (host, port string, addrs []netip.Addr, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", nil, err
	}
	addrs, err = c.lookup(ctx, host)
	return host, port, addrs, err
}

// dialInTurn dials addrs in turn through dial (each with its hostport,
// the address joined with port) until one connects or ctx ends: the
// connection, else the first error; nil and nil for no address.
func dialInTurn(ctx context.Context, addrs []netip.Addr, port string,
	dial func(ctx context.Context, a netip.Addr, hostport string) (net.Conn, error)) (net.Conn, error) {
	var first error
	for _, a := range addrs {
		conn, err := dial(ctx, a, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}
