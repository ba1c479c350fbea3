package hook

import (
	"container/heap"
	"crypto/sha256"
	"sync"
	"time"
)

// seenKey identifies one accepted request: its timestamp and its MAC. The
// MAC is kept decoded, so that the same signature written in upper-case hex
// is the same key.
type seenKey struct {
	ts  int64
	mac [sha256.Size]byte
}

type seenEntry struct {
	key     seenKey
	expires time.Time
}

// seenSet remembers accepted (timestamp, signature) pairs until their
// timestamp leaves the replay window, at most max of them. It is safe for
// concurrent use.
type seenSet struct {
	mu    sync.Mutex
	max   int
	keys  map[seenKey]struct{}
	byExp expiryHeap
}

func newSeenSet(limit int) *seenSet {
	return &seenSet{max: limit, keys: make(map[seenKey]struct{})}
}

// add drops the entries that expired before now, then records key until
// expires. It reports replayed, recording nothing, when key is already
// recorded; and full, recording nothing, when max entries are still live,
// with how long until the first of them expires.
func (s *seenSet) add(key seenKey, expires, now time.Time) (replayed, full bool, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now)
	if _, ok := s.keys[key]; ok {
		return true, false, 0
	}
	if len(s.keys) >= s.max {
		return false, true, max(s.byExp[0].expires.Sub(now), time.Second)
	}
	s.keys[key] = struct{}{}
	heap.Push(&s.byExp, seenEntry{key: key, expires: expires})
	return false, false, 0
}

// prune drops the entries that expired before now. s.mu must be held.
func (s *seenSet) prune(now time.Time) {
	for len(s.byExp) > 0 && now.After(s.byExp[0].expires) {
		e := heap.Pop(&s.byExp).(seenEntry)
		delete(s.keys, e.key)
	}
}

// live returns the number of entries still live at now.
func (s *seenSet) live(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now)
	return len(s.keys)
}

// expiryHeap is a min-heap of entries by expiry (container/heap).
type expiryHeap []seenEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(seenEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
