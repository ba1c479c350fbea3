// Package metrics exposes sentry's Prometheus metrics at /metrics, from a
// registry of its own (nothing registers globally).
//
// Read from the database at each scrape, so that every `sentry run`
// reports the same truth, whoever ran the runs (a daemon, another one, a
// `sentry sweep` from cron):
//
//	sentry_mirrors{state}                              mirrors by state: up, down, unknown, disabled
//	sentry_mirror_up{mirror}                           1 up (degraded included), 0 down; active mirrors swept at least once
//	sentry_mirror_state{mirror, state}                 1 for the mirror's condition (report.Condition), 0 for the others
//	sentry_mirror_last_check_timestamp_seconds{mirror} when a sweep last judged the mirror
//	sentry_mirror_locations_off{mirror}                an up mirror's locations of active products that are off
//	sentry_mirror_failing_vantages{mirror}             vantage points an active mirror failed from at its last sweep
//	sentry_recent_runs{kind, outcome}                  runs ended in the last 24 hours, by kind and outcome
//	sentry_last_run_outcome{kind, outcome}             1 for the outcome of the newest ended run of each kind
//	sentry_last_completed_run_timestamp_seconds{kind}  end of the last run of a kind that ran through
//	sentry_release_weighted_uptake{release}            rating-weighted uptake of releases first primed in the last 7 days,
//	                                                   over the mirrors the redirector can offer for them
//	sentry_release_locations_without_good_copy{release, scheme}  locations of a live release whose users of scheme
//	                                                   the redirector can send to no good copy
//	sentry_mirror_not_offered{mirror, reason}          1 for an active mirror the redirector never offers (no_region, wrong_scheme)
//	sentry_release_first_prime_timestamp_seconds{release}  when such a release was first primed
//	sentry_release_capacity_seconds{release, share}    seconds from its first prime to share (0.5, 0.9, 1) of the eligible capacity (capacity.go)
//	sentry_release_capacity_share{release}             share of the eligible capacity that has held it
//	sentry_alias_promoted_timestamp_seconds{alias, product}  when sentry last moved an alias, to that product (aliases.go)
//	sentry_mirror_tls_not_after_timestamp_seconds{mirror}  when an https mirror's certificate ends
//	sentry_mirror_tls_warning{mirror}                  1 when it ends within checks.tls_expiry_warning (still offered)
//	sentry_mirror_family_broken{mirror, family}        1 for an address family an up mirror failed over at its last sweep
//	sentry_mirror_family_files_failing{mirror, family} files an up mirror serves missing or wrong over that family alone
//	sentry_database_up                                 whether the scrape could read the database
//
// This process's own, as it works:
//
//	sentry_checks_total{mirror, result}            checks made, by mirror and result kind
//	sentry_verified_bytes_total{mirror}            bytes whose checksum was verified
//	sentry_runs_total{kind, outcome}               runs this process saw end, by outcome
//	sentry_run_duration_seconds{kind}              runs this process saw end, histogram
//	sentry_guard_activations_total{kind}           mass-failure guard activations judged here
//	sentry_notifications_dropped_total             webhook events dropped (queue full or retries spent)
//
// Go runtime and process metrics are included. docs/prometheus/sentry-rules.yml
// alerts on them.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/mirrorsentry/sentry/checks/safetext"

	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// Metrics is an Observer feeding a Prometheus registry.
type Metrics struct {
	log         *slog.Logger
	reg         *prometheus.Registry
	checks      *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	runDuration *prometheus.HistogramVec
	runs        *prometheus.CounterVec
	guards      *prometheus.CounterVec
	dropped     prometheus.Counter
}

var _ observe.Observer = (*Metrics)(nil)

// New builds the metrics. pool, when not nil, is read at each scrape for
// the series read from the database.
func New(pool *pgxpool.Pool, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		log: log,
		reg: prometheus.NewRegistry(),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentry_checks_total", Help: "Checks made, by mirror and result kind (ok, unchanged or a failure kind).",
		}, []string{"mirror", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentry_verified_bytes_total", Help: "Bytes whose checksum was verified, by mirror.",
		}, []string{"mirror"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sentry_run_duration_seconds", Help: "Duration of primes and sweeps, by kind.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
		}, []string{"kind"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentry_runs_total", Help: "Primes and sweeps this process saw end, by kind and outcome (sentry_recent_runs counts everyone's).",
		}, []string{"kind", "outcome"}),
		guards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentry_guard_activations_total", Help: "Times the mass-failure guard held back marking, by run kind.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentry_notifications_dropped_total", Help: "Webhook notifications dropped: queue full or retries spent.",
		}),
	}
	m.reg.MustRegister(m.checks, m.bytes, m.runDuration, m.runs, m.guards, m.dropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if pool != nil {
		m.reg.MustRegister(&stateCollector{rep: report.New(pool, nil), log: log})
		m.reg.MustRegister(&capacityCollector{rep: report.New(pool, nil), log: log})
		m.reg.MustRegister(&aliasCollector{rep: report.New(pool, nil), log: log})
	}
	// The series an alert would look for exist from the start, at 0.
	for _, kind := range []string{"prime", "sweep", "deep_sweep"} {
		m.guards.WithLabelValues(kind)
	}
	return m
}

// Handler serves the registry in the Prometheus exposition format. A
// series that cannot be gathered is logged and left out, the others are
// served; when none can be, or anything panics, the answer is a short
// 500 pointing at the log, never the error's text (a collector's panic
// comes back from the library with its stack trace).
func (m *Metrics) Handler() http.Handler {
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := m.reg.Gather()
		if err != nil {
			m.log.Error("metrics: some series could not be gathered", "err", firstLine(err.Error()))
			err = errGather
		}
		return mfs, err
	})
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second,
		ErrorHandling: promhttp.ContinueOnError})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				m.log.Error("metrics: panic", "panic", firstLine(fmt.Sprint(v)), "stack", string(debug.Stack()))
				http.Error(w, errGather.Error(), http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// errGather is what a scraper is told when gathering failed.
var errGather = errors.New("metrics could not be gathered: see sentry's log")

// firstLine is s up to its first line break: a collector's panic comes
// with its stack trace, which the log does not need every scrape.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// label makes a label value of what the database holds: valid UTF-8
// (the library panics on anything else), without control or
// bidirectional characters (safetext).
func label(s string) string { return safetext.Text(s) }

// Registry is the metrics' own registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// NotificationDropped counts a webhook event given up on.
func (m *Metrics) NotificationDropped() { m.dropped.Inc() }

// CheckDone implements observe.Observer.
func (m *Metrics) CheckDone(c observe.CheckEvent) {
	m.checks.WithLabelValues(label(c.Mirror), string(c.Result)).Inc()
	if c.BytesVerified > 0 {
		m.bytes.WithLabelValues(label(c.Mirror)).Add(float64(c.BytesVerified))
	}
}

// StateChanged implements observe.Observer: sentry_mirrors is read from
// the database instead.
func (m *Metrics) StateChanged(observe.StateChangeEvent) {}

// GuardHeld implements observe.Observer.
func (m *Metrics) GuardHeld(e observe.GuardEvent) { m.guards.WithLabelValues(e.RunKind).Inc() }

// RunFinished implements observe.Observer.
func (m *Metrics) RunFinished(e observe.RunEvent) {
	m.runs.WithLabelValues(e.Kind, e.Outcome).Inc()
	m.runDuration.WithLabelValues(e.Kind).Observe(e.Finished.Sub(e.Started).Seconds())
}

// recentReleases is how far back a release's first prime may be for its
// uptake to be exported, and maxReleases how many such releases are;
// recentRuns the window of sentry_recent_runs; maxLiveReleases how many
// live releases (newest first) sentry_release_locations_without_good_copy
// covers.
const (
	recentReleases  = 7 * 24 * time.Hour
	maxReleases     = 5
	recentRuns      = 24 * time.Hour
	maxLiveReleases = 20
)

// stateCollector reads the series of the database at scrape time: the
// mirrors' states (report.States: a row per mirror), the runs' totals and
// the uptake of recent releases.
type stateCollector struct {
	rep *report.Reporter
	log *slog.Logger
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	mirrorsDesc = desc("sentry_mirrors",
		"Mirrors by state: up or down (as sweeps judged them), unknown (never swept), disabled (mirror_mirrors.active off).", "state")
	mirrorUpDesc = desc("sentry_mirror_up",
		"1 when an active mirror is up (degraded included), 0 when down; absent before its first sweep.", "mirror")
	mirrorStateDesc = desc("sentry_mirror_state",
		"1 for the mirror's condition (up, degraded: up with locations off, down, unknown, disabled), 0 for the others.", "mirror", "state")
	lastCheckDesc = desc("sentry_mirror_last_check_timestamp_seconds",
		"Unix time at which a sweep last judged the mirror.", "mirror")
	locationsOffDesc = desc("sentry_mirror_locations_off",
		"Locations of active products that are off (active or healthy false) on an up mirror.", "mirror")
	failingVantagesDesc = desc("sentry_mirror_failing_vantages",
		"Vantage points an active mirror failed from at its last sweep; above 0 on an up mirror: partially unreachable.", "mirror")
	recentRunsDesc = desc("sentry_recent_runs",
		"Primes and sweeps ended in the last 24 hours, by kind and outcome, whoever ran them (read from sentry_runs).", "kind", "outcome")
	lastOutcomeDesc = desc("sentry_last_run_outcome",
		"1 for the outcome of the newest ended run of each kind (completed, guarded, interrupted, failed), 0 for the others.", "kind", "outcome")
	lastCompletedDesc = desc("sentry_last_completed_run_timestamp_seconds",
		"Unix time at which the last run of each kind ran through (completed or guarded), whoever ran it.", "kind")
	uptakeDesc = desc("sentry_release_weighted_uptake",
		"Rating-weighted share, of the mirrors the redirector can offer for a recent release (region, scheme), of those holding every file verified.", "release")
	withoutCopyDesc = desc("sentry_release_locations_without_good_copy",
		"Locations of a live release (an active product) whose users arriving with scheme reach no good copy: no mirror the redirector offers them holds it active and healthy.", "release", "scheme")
	notOfferedDesc = desc("sentry_mirror_not_offered",
		"1 for an active mirror the redirector never offers, whatever sentry verified there: no_region (no geoip_mirror_region_map row), wrong_scheme (a base URL of neither http:// nor https://).", "mirror", "reason")
	firstPrimeDesc = desc("sentry_release_first_prime_timestamp_seconds",
		"Unix time of a recent release's first prime.", "release")
	dbUpDesc = desc("sentry_database_up", "Whether the last scrape could read the database.")

	tlsNotAfterDesc = desc("sentry_mirror_tls_not_after_timestamp_seconds",
		"Unix time at which the certificate an https mirror showed at its last sweep ends.", "mirror")
	tlsWarningDesc = desc("sentry_mirror_tls_warning",
		"1 when an https mirror's certificate is valid but ends within checks.tls_expiry_warning (the mirror stays offered), 0 otherwise.", "mirror")
	familyBrokenDesc = desc("sentry_mirror_family_broken",
		"1 for an address family (ipv4, ipv6) an up mirror failed over at its last sweep while reached over another, or whose files it serves missing or wrong while another family serves them right.", "mirror", "family")
	familyFilesDesc = desc("sentry_mirror_family_files_failing",
		"Release files an up mirror serves missing or wrong over one address family (ipv4, ipv6) alone, while another family serves them right (their locations are off).", "mirror", "family")
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mirrorsDesc, mirrorUpDesc, mirrorStateDesc, lastCheckDesc, locationsOffDesc,
		failingVantagesDesc, recentRunsDesc, lastOutcomeDesc, lastCompletedDesc, uptakeDesc, firstPrimeDesc, dbUpDesc,
		tlsNotAfterDesc, tlsWarningDesc, familyBrokenDesc, familyFilesDesc, withoutCopyDesc, notOfferedDesc} {
		ch <- d
	}
}

// scrape is everything a scrape reports from the database.
type scrape struct {
	mirrors   []report.MirrorRow
	runs      *report.RunTotals
	uptake    []report.Uptake
	coverages []report.Coverage
}

// read is everything a scrape reports from the database.
func (c *stateCollector) read(ctx context.Context) (*scrape, error) {
	var s scrape
	var err error
	if s.mirrors, err = c.rep.States(ctx); err != nil {
		return nil, err
	}
	if s.runs, err = c.rep.RunTotals(ctx, recentRuns); err != nil {
		return nil, err
	}
	if s.uptake, err = c.rep.RecentUptake(ctx, recentReleases, maxReleases); err != nil {
		return nil, err
	}
	if s.coverages, err = c.rep.Coverages(ctx, maxLiveReleases); err != nil {
		return nil, err
	}
	return &s, nil
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// one is 1 for true, 0 for false: a gauge of a yes or no.
func one(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.read(ctx)
	if err != nil {
		if c.log != nil {
			c.log.Warn("metrics: cannot read the database", "err", err)
		}
		ch <- prometheus.MustNewConstMetric(dbUpDesc, prometheus.GaugeValue, 0)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		for i := range labels {
			labels[i] = label(labels[i])
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(dbUpDesc, 1)
	mirrors, runs, uptake := s.mirrors, s.runs, s.uptake
	counts := map[string]float64{"up": 0, "down": 0, "unknown": 0, "disabled": 0}
	for _, m := range mirrors {
		counts[m.State]++
		cond := m.Condition()
		for _, s := range report.Conditions {
			gauge(mirrorStateDesc, one(s == cond), m.Name, s)
		}
		if m.State == "disabled" {
			continue // not swept: its last verdicts are old
		}
		if t := m.TLS; t != nil {
			gauge(tlsNotAfterDesc, seconds(t.NotAfter), m.Name)
			gauge(tlsWarningDesc, one(t.Warning), m.Name)
		}
		for _, f := range m.BrokenFamilies {
			gauge(familyBrokenDesc, 1, m.Name, f)
		}
		if code := m.NotOfferedCode(); code != "" {
			gauge(notOfferedDesc, 1, m.Name, code)
		}
		for _, f := range m.FamilyFailures {
			gauge(familyFilesDesc, float64(f.Missing+f.Wrong), m.Name, f.Family)
		}
		if cond == "maintenance" {
			continue // announced by its admin: no verdict to alert on
		}
		if m.State == "up" || m.State == "down" {
			gauge(mirrorUpDesc, one(m.State == "up"), m.Name)
			gauge(locationsOffDesc, float64(m.LocationsOff), m.Name)
		}
		if m.LastSweep != nil {
			gauge(lastCheckDesc, seconds(*m.LastSweep), m.Name)
		}
		gauge(failingVantagesDesc, float64(len(m.FailingFrom)), m.Name)
	}
	for state, n := range counts {
		gauge(mirrorsDesc, n, state)
	}
	for kind, byOutcome := range runs.Ended {
		for outcome, n := range byOutcome {
			gauge(recentRunsDesc, float64(n), kind, outcome)
		}
	}
	for kind, last := range runs.LastOutcome {
		for _, o := range report.EndOutcomes {
			gauge(lastOutcomeDesc, one(o == last), kind, o)
		}
	}
	for kind, at := range runs.LastCompleted {
		gauge(lastCompletedDesc, seconds(at), kind)
	}
	for _, u := range uptake {
		gauge(firstPrimeDesc, seconds(u.FirstPrime), u.Release)
		if u.Weighted != nil {
			gauge(uptakeDesc, *u.Weighted, u.Release)
		}
	}
	for _, cv := range s.coverages {
		gauge(withoutCopyDesc, float64(cv.Without), cv.Release, cv.Scheme)
	}
}
