package web

import (
	"fmt"
	"net/http"
	"runtime/debug"
)

// DefaultMaxInFlight is Options.MaxInFlight's default.
const DefaultMaxInFlight = 16

// guard wraps every handler of the page and the API:
//   - at most MaxInFlight requests are worked on at once; the others are
//     answered 503 at once, so that a flood of requests holds neither
//     goroutines nor database connections (the page has a pool of its
//     own, which the daemon keeps apart from the one leases use);
//   - no answer may be framed (X-Frame-Options, and the pages' CSP says
//     frame-ancestors 'none'), nor sniffed as another type than the one
//     it declares (X-Content-Type-Options: nosniff);
//   - a panic is logged, with its stack, and answered with a short 500:
//     the client never sees a stack trace.
func (s *Server) guard(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		select {
		case s.inFlight <- struct{}{}:
			defer func() { <-s.inFlight }()
		default:
			hd.Set("Retry-After", "1")
			http.Error(w, "busy: too many requests to the status page at once; try again", http.StatusServiceUnavailable)
			return
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("status page: panic", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				http.Error(w, "internal error: see sentry's log", http.StatusInternalServerError)
			}
		}()
		h(w, r)
	})
}
