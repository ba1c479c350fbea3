package checks

import (
	"net/http"
	"strconv"
	"strings"
)

// CacheWord is what a cache's own headers say of one answer: that it came
// from the cache (a hit), that the cache fetched it (a miss), or nothing.
// Priming learns from it whether a cache keeps a file it fetched for a
// one-byte range (package primer).
type CacheWord int8

// The cache words.
const (
	// CacheSilent: no cache header, or none that says hit or miss.
	CacheSilent CacheWord = iota
	// CacheHit: the answer came from the cache's copy.
	CacheHit
	// CacheMiss: the cache fetched the answer from its upstream (or did
	// not use its copy: expired, bypassed).
	CacheMiss
)

func (w CacheWord) String() string {
	switch w {
	case CacheHit:
		return "hit"
	case CacheMiss:
		return "miss"
	}
	return "silent"
}

// CacheWordOf reads the cache's word from the headers CacheStatus
// summarises, the most explicit first:
//   - Cache-Status (RFC 9211): its last entry, the cache nearest to
//     sentry, is a hit when it carries the "hit" parameter, a miss when it
//     carries "fwd";
//   - X-Cache-Status (nginx's $upstream_cache_status): HIT, STALE,
//     UPDATING and REVALIDATED are hits; MISS, EXPIRED and BYPASS misses;
//   - X-Cache (Squid, Varnish, CDNs): its last value is a hit when it
//     holds HIT (TCP_HIT, "HIT from …"), a miss when it holds MISS;
//   - X-Varnish (Varnish, stock): two transaction ids (this request's and
//     the one that stored the object) are a hit, one a miss;
//   - Age: a positive age means a cached copy (RFC 9111); 0 says nothing.
//
// h's keys are canonical, as net/http's answers have them.
func CacheWordOf(h http.Header) CacheWord {
	if vs := h["Cache-Status"]; len(vs) > 0 {
		entries := strings.Split(strings.Join(vs, ","), ",")
		if w := cacheStatusEntry(entries[len(entries)-1]); w != CacheSilent {
			return w
		}
	}
	if v := strings.ToUpper(strings.TrimSpace(first(h["X-Cache-Status"]))); v != "" {
		switch v {
		case "HIT", "STALE", "UPDATING", "REVALIDATED":
			return CacheHit
		case "MISS", "EXPIRED", "BYPASS":
			return CacheMiss
		}
	}
	if vs := h["X-Cache"]; len(vs) > 0 {
		all := strings.Split(strings.Join(vs, ","), ",")
		last := strings.ToUpper(all[len(all)-1])
		switch {
		case strings.Contains(last, "HIT"):
			return CacheHit
		case strings.Contains(last, "MISS"):
			return CacheMiss
		}
	}
	if vs := h["X-Varnish"]; len(vs) > 0 {
		switch len(strings.Fields(vs[len(vs)-1])) {
		case 2:
			return CacheHit
		case 1:
			return CacheMiss
		}
	}
	if v := strings.TrimSpace(first(h["Age"])); v != "" {
		if age, err := strconv.ParseInt(v, 10, 64); err == nil && age > 0 {
			return CacheHit
		}
	}
	return CacheSilent
}

// cacheStatusEntry reads one Cache-Status entry: "name; hit" or
// "name; fwd=miss; stored".
func cacheStatusEntry(e string) CacheWord {
	params := strings.Split(e, ";")
	for _, p := range params[1:] {
		key, _, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "hit":
			return CacheHit
		case "fwd":
			return CacheMiss
		}
	}
	return CacheSilent
}

// first is the first of vs, "" when there is none: Header.Get of a
// canonical key, indexed without canonicalising it again.
func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}
