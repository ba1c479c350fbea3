// Package web is the status page `sentry run` serves: a mirror table with
// a 14-day history strip per mirror, a page per mirror (failing files,
// state history) and a page per release (uptake over time), all rendered
// on the server as HTML and inline SVG, without JavaScript. The same data
// is served as JSON under /api/.
//
//	GET /                         the mirror table (checks of the last 24h)
//	GET /mirrors/{name}           one mirror
//	GET /releases/{name}          one release's uptake
//	GET /api/mirrors[?since=D]    report.Mirrors
//	GET /api/mirrors/{name}[?since=D]  report.MirrorDetail
//	GET /api/releases             the releases sentry knows
//	GET /api/releases/{name}      report.Release
//	GET /api/history[?days=N]     per mirror, checks and failures per day
//	GET /api/runs[?limit=N]       the newest runs (default 50, at most 500)
//	GET /api/uptake/?product=P&os=O[&fuzzy=1]  the admin app's uptake XML (uptake.go)
//	GET /api/                     this list, as JSON
//
// since takes the forms of `sentry report --since` (24h, 7d, 2006-01-02).
// The pages are read-only and carry no secret; put them behind the same
// access control as the rest of the daemon's address.
package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/sentry/report"
)

//go:embed templates/*.html
var templatesFS embed.FS

// historyDays is the length of the history strips.
const historyDays = 14

// Server renders the status page and its API.
type Server struct {
	rep       *report.Reporter
	log       *slog.Logger
	now       func() time.Time
	nextSweep func(time.Time) time.Time
	pages     *template.Template
	inFlight  chan struct{} // guard.go
}

// Options configure a Server.
type Options struct {
	Reporter *report.Reporter
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// NextSweep, when set, gives the time of the next scheduled sweep after
	// a time (the daemon's schedule.sweep), for the page to show.
	NextSweep func(after time.Time) time.Time
	// MaxInFlight bounds the requests worked on at once; more are
	// answered 503 (guard.go). 0: DefaultMaxInFlight.
	MaxInFlight int
}

// New builds the status page.
func New(opts Options) (*Server, error) {
	if opts.Reporter == nil {
		return nil, errors.New("web: a Reporter is required")
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	s := &Server{rep: opts.Reporter, log: opts.Logger, now: opts.Now, nextSweep: opts.NextSweep,
		inFlight: make(chan struct{}, opts.MaxInFlight)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	t, err := template.New("").Funcs(funcs(s.now)).ParseFS(templatesFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	s.pages = t
	return s, nil
}

// Register adds the page's routes to mux, each guarded (guard.go).
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("GET /{$}", s.guard(s.index))
	mux.Handle("GET /mirrors/{name}", s.guard(s.mirror))
	mux.Handle("GET /releases/{name}", s.guard(s.release))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.Handle("GET /api/mirrors", s.guard(s.apiMirrors))
	mux.Handle("GET /api/mirrors/{name}", s.guard(s.apiMirror))
	mux.Handle("GET /api/releases", s.guard(s.apiReleases))
	mux.Handle("GET /api/releases/{name}", s.guard(s.apiRelease))
	mux.Handle("GET /api/history", s.guard(s.apiHistory))
	mux.Handle("GET /api/runs", s.guard(s.apiRuns))
	mux.Handle("GET /api/uptake/{$}", s.guard(s.apiUptake))
	mux.Handle("GET /api/uptake", s.guard(s.apiUptake))
	mux.Handle("GET /api/{$}", s.guard(s.apiIndex))
}

// Endpoint is one entry of the /api/ index.
type Endpoint struct {
	Path   string `json:"path"`
	Params string `json:"params,omitempty"`
	What   string `json:"what"`
}

// Endpoints is what /api/ lists.
var Endpoints = []Endpoint{
	{"/api/mirrors", "since=D (24h, 7d, 2006-01-02)", "every mirror: condition, why, counts of the window (sentry report --format json)"},
	{"/api/mirrors/{name}", "since=D", "one mirror: failing files, recent failures, state history (sentry report --mirror)"},
	{"/api/releases", "", "the releases sentry knows, newest first"},
	{"/api/releases/{name}", "", "a release's uptake (sentry report --release)"},
	{"/api/history", "days=N (1 to 90)", "per mirror id, checks and failures per day"},
	{"/api/runs", "limit=N (1 to 500)", "the newest primes and sweeps, with outcome and reason"},
	{"/api/uptake/", "product=P, os=O, fuzzy=1", "uptake per location, as the bouncer admin app's XML (JSON with Accept: application/json, with the verified uptake among the mirrors the redirector can offer)"},
	{"/metrics", "", "Prometheus metrics"},
	{"/healthz", "", "200 when the database answers"},
}

func (s *Server) apiIndex(w http.ResponseWriter, r *http.Request) {
	s.json(w, map[string][]Endpoint{"endpoints": Endpoints})
}

func (s *Server) apiRuns(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > report.MaxRuns {
			s.fail(w, r, fmt.Errorf("limit: %q is not a number of runs from 1 to %d", v, report.MaxRuns), true)
			return
		}
		limit = n
	}
	runs, err := s.rep.Runs(r.Context(), limit)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	s.json(w, map[string][]report.Run{"runs": runs})
}

func (s *Server) window(r *http.Request) (report.Window, error) {
	now := s.now()
	since := now.Add(-24 * time.Hour)
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := report.ParseSince(v, now)
		if err != nil {
			return report.Window{}, fmt.Errorf("since: %w", err)
		}
		since = t
	}
	return report.Window{Since: since, Until: now}, nil
}

// fail answers an error: 404 for what does not exist, 400 for a bad
// parameter, 500 (logged, not detailed) for the rest.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, badRequest bool) {
	switch {
	case errors.Is(err, report.ErrNotFound):
		http.Error(w, safetext.Text(err.Error()), http.StatusNotFound)
	case badRequest:
		http.Error(w, safetext.Text(err.Error()), http.StatusBadRequest)
	case errors.Is(err, context.Canceled):
		// The client went away.
	default:
		s.log.Error("status page", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error: see sentry's log", http.StatusInternalServerError)
	}
}

func (s *Server) json(w http.ResponseWriter, v any) {
	var b bytes.Buffer
	if err := report.WriteJSON(&b, v); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b.Bytes())
}

// render writes a page; the whole page is rendered before a byte is sent,
// so an error is a clean 500, not half a page. The templates escape
// markup; what they cannot (control and bidirectional characters in a
// mirror's name or a detail, which reorder or hide text) is made visible
// over the whole page (safetext.Lines: the templates hold none of them).
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	var b bytes.Buffer
	if err := s.pages.ExecuteTemplate(&b, name, data); err != nil {
		s.fail(w, r, err, false)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	_, _ = io.WriteString(w, safetext.Lines(b.String()))
}

// indexRow is a mirror row with its history strip.
type indexRow struct {
	report.MirrorRow
	Strip []report.Day
}

type indexPage struct {
	Now      time.Time
	Window   report.Window
	Rows     []indexRow
	Counts   map[string]int // by condition
	Partial  int            // mirrors up but partially unreachable
	Releases []string
	Runs     []report.Run // the newest
	// LastSweep is the newest sweep (light or deep), nil before the first;
	// NextSweep the next scheduled one, nil when unknown.
	LastSweep *report.Run
	NextSweep *time.Time
}

// recentRuns is how many runs the page lists.
const recentRuns = 10

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	win, err := s.window(r)
	if err != nil {
		s.fail(w, r, err, true)
		return
	}
	ctx := r.Context()
	ms, err := s.rep.Mirrors(ctx, win)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	hist, start, err := s.rep.History(ctx, historyDays)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	rels, err := s.rep.Releases(ctx)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	runs, err := s.rep.Runs(ctx, 200)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	p := indexPage{Now: s.now(), Window: win, Counts: map[string]int{}, Releases: rels, Runs: runs[:min(len(runs), recentRuns)]}
	for i := range runs {
		if runs[i].Kind != "prime" {
			p.LastSweep = &runs[i]
			break
		}
	}
	if s.nextSweep != nil {
		next := s.nextSweep(p.Now)
		p.NextSweep = &next
	}
	for _, m := range ms.Mirrors {
		strip := hist[m.ID]
		if strip == nil {
			strip = emptyStrip(start)
		}
		p.Rows = append(p.Rows, indexRow{MirrorRow: m, Strip: strip})
		p.Counts[m.Condition()]++
		if m.Partial {
			p.Partial++
		}
	}
	s.render(w, r, "index.html", p)
}

func emptyStrip(start time.Time) []report.Day {
	out := make([]report.Day, historyDays)
	for i := range out {
		out[i].Start = start.Add(time.Duration(i) * 24 * time.Hour)
	}
	return out
}

func (s *Server) mirror(w http.ResponseWriter, r *http.Request) {
	win, err := s.window(r)
	if err != nil {
		s.fail(w, r, err, true)
		return
	}
	d, err := s.rep.Mirror(r.Context(), r.PathValue("name"), win)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	s.render(w, r, "mirror.html", struct {
		Now time.Time
		*report.MirrorDetail
	}{s.now(), d})
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	rel, err := s.rep.Release(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	s.render(w, r, "release.html", struct {
		Now   time.Time
		Chart *chart
		*report.Release
	}{s.now(), uptakeChart(rel), rel})
}

func (s *Server) apiMirrors(w http.ResponseWriter, r *http.Request) {
	win, err := s.window(r)
	if err != nil {
		s.fail(w, r, err, true)
		return
	}
	ms, err := s.rep.Mirrors(r.Context(), win)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	s.json(w, ms)
}

func (s *Server) apiMirror(w http.ResponseWriter, r *http.Request) {
	win, err := s.window(r)
	if err != nil {
		s.fail(w, r, err, true)
		return
	}
	d, err := s.rep.Mirror(r.Context(), r.PathValue("name"), win)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	s.json(w, d)
}

func (s *Server) apiReleases(w http.ResponseWriter, r *http.Request) {
	rels, err := s.rep.Releases(r.Context())
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	s.json(w, map[string][]string{"releases": rels})
}

func (s *Server) apiRelease(w http.ResponseWriter, r *http.Request) {
	rel, err := s.rep.Release(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	s.json(w, rel)
}

func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request) {
	days := historyDays
	if v := r.URL.Query().Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 90 {
			s.fail(w, r, fmt.Errorf("days: %q is not a number of days from 1 to 90", v), true)
			return
		}
		days = n
	}
	hist, start, err := s.rep.History(r.Context(), days)
	if err != nil {
		s.fail(w, r, err, false)
		return
	}
	out := struct {
		Start   time.Time               `json:"start"`
		Days    int                     `json:"days"`
		Mirrors map[string][]report.Day `json:"mirrors"` // by mirror id
	}{start, days, map[string][]report.Day{}}
	for id, strip := range hist {
		out.Mirrors[strconv.Itoa(id)] = strip
	}
	s.json(w, out)
}
