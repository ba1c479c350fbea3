package checks

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The redirect policy.
//
// A mirror sentry does not control may answer with a redirect anywhere:
// to sentry's own daemon on 127.0.0.1, to a cloud's metadata service on
// 169.254.169.254, to a database on the private network. Followed, what
// such a service answers would reach the page, the API and the mail to
// the mirror's admin. So a redirect hop may connect only to a public
// address, or to an address of the same kind as the mirror's own (a
// mirror on loopback, as in tests and demos, may redirect to loopback;
// one on a private network to that network). The check is made when the
// hop's connection is dialled, on the addresses its name resolves to,
// and the connection is made to the very address checked: a name that
// resolves to a public address when the redirect is judged and to
// 127.0.0.1 a moment later (DNS rebinding) is caught all the same.
// Connections dialled for redirect hops are pooled apart from the
// others, by what they were allowed to reach, so that no hop reuses a
// connection it would not have been allowed to make.
//
// The first request of a check goes where its URL says: the mirror's
// base URL is the bouncer database's word, and its name is resolved by
// the system as for every other connection.

// addrClass is the kind of address the redirect policy tells apart.
type addrClass uint8

const (
	classPublic addrClass = iota
	classLoopback
	classLinkLocal
	classUnspecified
	classPrivate
	classShared // 100.64.0.0/10, carrier-grade NAT: a provider's inside
	classMulticast
	numClasses
)

var classNames = [numClasses]string{"public", "loopback", "link-local", "unspecified", "private", "shared (carrier-grade NAT)", "multicast"}

func (k addrClass) String() string {
	if k < numClasses {
		return classNames[k]
	}
	return "unknown"
}

var (
	sharedPrefix   = netip.MustParsePrefix("100.64.0.0/10")
	thisNetPrefix  = netip.MustParsePrefix("0.0.0.0/8")
	siteLocalV6    = netip.MustParsePrefix("fec0::/10")
	nat64Prefix    = netip.MustParsePrefix("64:ff9b::/96")
	nat64LocalPref = netip.MustParsePrefix("64:ff9b:1::/48")
)

// classOf is the kind of address a is (IPv4-mapped IPv6 addresses as
// the IPv4 address they carry, and NAT64 ones as the IPv4 address they
// translate to).
func classOf(a netip.Addr) addrClass {
	a = a.Unmap()
	if a.Is6() && nat64Prefix.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	switch {
	case a.IsLoopback():
		return classLoopback
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return classLinkLocal
	case a.IsUnspecified(), a.Is4() && thisNetPrefix.Contains(a):
		return classUnspecified
	case a.IsPrivate(), siteLocalV6.Contains(a), nat64LocalPref.Contains(a):
		return classPrivate
	case a.Is4() && sharedPrefix.Contains(a):
		return classShared
	case a.IsMulticast():
		return classMulticast
	}
	return classPublic
}

// classSet is a set of addrClass.
type classSet uint16

func (s classSet) has(k addrClass) bool { return s&(1<<k) != 0 }
func (s classSet) with(k addrClass) classSet {
	return s | 1<<k
}

// hopAllowed is the policy, as a pure function: what a redirect hop may
// connect to, given the kinds of address the check's first URL resolves
// to (base). A public address always; another kind only when the base
// is of that kind.
func hopAllowed(base []addrClass) classSet {
	s := classSet(0).with(classPublic)
	for _, k := range base {
		s = s.with(k)
	}
	return s
}

// class is classOf, but for the addresses ClientOptions.PublicPrefixes
// names, which count as public.
func (c *Client) class(a netip.Addr) addrClass {
	for _, p := range c.opts.PublicPrefixes {
		if p.Contains(a.Unmap()) || p.Contains(a) {
			return classPublic
		}
	}
	return classOf(a)
}

type hopKey struct{}

// hopPolicyOf is what the connections of ctx's request may reach, when
// it is a redirect hop (ok false otherwise: no restriction).
func hopPolicyOf(ctx context.Context) (classSet, bool) {
	s, ok := ctx.Value(hopKey{}).(classSet)
	return s, ok
}

// hopPolicy is the policy of a redirect hop: what its connection may
// reach, from the addresses of the check's first URL. It is worked out
// once per check (the probe keeps it).
func (c *Client) hopPolicy(req *http.Request) classSet {
	p, _ := req.Context().Value(attemptsKey{}).(*probe)
	if p != nil && p.hopSet != 0 {
		return p.hopSet
	}
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	var base []addrClass
	if addrs, err := c.lookup(req.Context(), first.URL.Hostname()); err == nil {
		for _, a := range addrs {
			base = append(base, c.class(a))
		}
	}
	s := hopAllowed(base)
	if p != nil {
		p.hopSet = s
	}
	return s
}

// RedirectRefusedError is why a redirect hop was not followed: its host
// is (or resolves to) an address the policy keeps checks away from. It
// wraps ErrRedirect.
type RedirectRefusedError struct {
	// Host is the hop's host as the redirect named it; Addr the first
	// address refused, and Class its kind.
	Host  string
	Addr  netip.Addr
	Class string
}

func (e *RedirectRefusedError) Error() string {
	return fmt.Sprintf("%s: %s", ErrRedirect, e.reason())
}

// reason says what was refused: "127.0.0.1 is a loopback address, and
// the mirror is not on one".
func (e *RedirectRefusedError) reason() string {
	article := "a"
	if strings.IndexByte("aeiou", e.Class[0]) >= 0 {
		article = "an"
	}
	if h := strings.Trim(e.Host, "[]"); h != e.Addr.String() {
		return fmt.Sprintf("%s resolves to %s, %s %s address, and the mirror is not on one", clip(h, 100), e.Addr, article, e.Class)
	}
	return fmt.Sprintf("%s is %s %s address, and the mirror is not on one", e.Addr, article, e.Class)
}

func (e *RedirectRefusedError) Unwrap() error { return ErrRedirect }

// policyDial wraps the dialer of every connection: a redirect hop's
// (hopPolicyOf) resolves its host, refuses the addresses the policy
// keeps it from, and dials those it allows, by address; other
// connections go to next as they are.
func (c *Client) policyDial(next dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		allow, ok := hopPolicyOf(ctx)
		if !ok {
			return next(ctx, network, addr)
		}
		host, port, addrs, err := c.resolveAddr(ctx, addr)
		if err != nil {
			return nil, err
		}
		var allowed []netip.Addr
		var refused *RedirectRefusedError
		for _, a := range addrs {
			if k := c.class(a); !allow.has(k) {
				if refused == nil {
					refused = &RedirectRefusedError{Host: host, Addr: a, Class: k.String()}
				}
				continue
			}
			allowed = append(allowed, a)
		}
		conn, err := dialInTurn(ctx, allowed, port, func(ctx context.Context, _ netip.Addr, hostport string) (net.Conn, error) {
			return next(ctx, network, hostport)
		})
		if conn != nil || err != nil {
			return conn, err
		}
		if refused != nil {
			return nil, refused
		}
		return nil, &net.DNSError{Err: "no address", Name: host, IsNotFound: true}
	}
}

// sameOrigin reports whether a and b have the same scheme, host and
// port.
func sameOrigin(a, b *http.Request) bool {
	return a.URL.Scheme == b.URL.Scheme && strings.EqualFold(canonicalHost(a), canonicalHost(b))
}

func canonicalHost(r *http.Request) string {
	host, port := r.URL.Hostname(), r.URL.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[r.URL.Scheme]
	}
	return net.JoinHostPort(host, port)
}
