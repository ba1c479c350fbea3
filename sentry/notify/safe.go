package notify

import (
	"github.com/mirrorsentry/sentry/checks/safetext"
)

// Webhooks feed chat rooms and pagers, where people read what an event
// holds: a mirror's name as its admin typed it, a reason quoting what a
// mirror's server answered, a certificate's names. safeEvent makes every
// such field safe for them (safetext.Text: control and bidirectional
// characters made visible) and takes the user and password out of base
// URLs (safetext.URL).
func safeEvent(e Event) Event {
	e.Vantage = safetext.Text(e.Vantage)
	if c := e.StateChange; c != nil {
		v := *c
		v.Mirror, v.BaseURL, v.Reason = safetext.Text(v.Mirror), safeURL(v.BaseURL), safetext.Text(v.Reason)
		v.From, v.To = safetext.Text(v.From), safetext.Text(v.To)
		e.StateChange = &v
	}
	if g := e.Guard; g != nil {
		v := *g
		v.Reason = safetext.Text(v.Reason)
		e.Guard = &v
	}
	if r := e.Run; r != nil {
		v := *r
		v.Reason = safetext.Text(v.Reason)
		e.Run = &v
	}
	if t := e.TLS; t != nil {
		v := *t
		v.Mirror, v.BaseURL, v.Host = safetext.Text(v.Mirror), safeURL(v.BaseURL), safetext.Text(v.Host)
		v.Issuer, v.Reason = safetext.Text(v.Issuer), safetext.Text(v.Reason)
		names := make([]string, len(v.Names))
		for i, n := range v.Names {
			names[i] = safetext.Text(n)
		}
		v.Names = names
		e.TLS = &v
	}
	return e
}

// safeURL is a URL as people are shown it: without user info, made safe.
func safeURL(raw string) string { return safetext.Text(safetext.URL(raw)) }
