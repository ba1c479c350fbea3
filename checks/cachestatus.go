package checks

import (
	"net/http"
	"strings"
)

// cacheHeaders are summarised by CacheStatus, in this order.
var cacheHeaders = [...]string{"Cache-Status", "X-Cache", "X-Cache-Status", "X-Varnish", "Age"}

// CacheStatus summarises the cache headers of an answer (Cache-Status,
// X-Cache, X-Cache-Status, X-Varnish and Age, in that order) as "Name: value" pairs
// joined by "; ", e.g. "X-Cache-Status: HIT; Age: 12". It returns "" when
// none is present. Several values of one header are joined by ", ". The
// result is bounded (256 bytes) and sanitised: it comes from the mirror.
// h's keys are canonical, as net/http's answers have them.
func CacheStatus(h http.Header) string {
	var parts []string
	for _, name := range cacheHeaders {
		vs := h[name]
		if len(vs) == 0 {
			continue
		}
		v := clip(strings.TrimSpace(strings.Join(vs, ", ")), 100)
		parts = append(parts, name+": "+v)
	}
	return clip(strings.Join(parts, "; "), maxCacheStatus)
}
