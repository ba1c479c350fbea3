package release

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mirrorsentry/sentry/checks"
)

// Master answers whether the master is reachable (the mass-failure guard
// asks before marking anything down), asking it at most every 30 seconds.
type Master struct {
	client *checks.Client
	url    string

	mu   sync.Mutex
	at   time.Time
	down string
	busy chan struct{}
}

// NewMaster asks url (a release's manifest, or the master's base URL).
func NewMaster(client *checks.Client, url string) *Master {
	return &Master{client: client, url: url, busy: make(chan struct{}, 1)}
}

// Down returns why the master is unreachable, "" when it answers.
func (m *Master) Down(ctx context.Context) string {
	select {
	case m.busy <- struct{}{}:
		defer func() { <-m.busy }()
	case <-ctx.Done():
		return "interrupted"
	}
	m.mu.Lock()
	if !m.at.IsZero() && time.Since(m.at) < 30*time.Second {
		defer m.mu.Unlock()
		return m.down
	}
	m.mu.Unlock()
	res := checks.Head(ctx, m.client, checks.Target{URL: m.url, Size: -1})
	m.mu.Lock()
	defer m.mu.Unlock()
	m.at, m.down = time.Now(), ""
	if res.Kind != checks.KindOK {
		m.down = fmt.Sprintf("the master is unreachable (%s: %s)", res.Kind, res.Detail)
	}
	return m.down
}
