package world

import (
	"context"
	"net/netip"
	"testing"

	"github.com/mirrorsentry/sentry/checks"
)

// Resolve rebuilds the world's checks client with resolver
// (checks.ClientOptions.Resolver): the host names a test makes up resolve
// as it says — a dual-stack mirror on loopback (realmirror.DualResolver),
// say.
func (w *World) Resolve(t testing.TB, resolver func(ctx context.Context, host string) ([]netip.Addr, error)) {
	t.Helper()
	o := w.Deps.Client.Options()
	o.Resolver = resolver
	c, err := checks.NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	w.Deps.Client = c
}
