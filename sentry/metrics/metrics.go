// Package metrics exposes sentry's Prometheus metrics at /metrics, from a
// registry of its own (nothing registers globally):
//
//	sentry_checks_total{mirror, result}            checks made, by mirror and result kind
//	sentry_verified_bytes_total{mirror}            bytes whose checksum was verified
//	sentry_mirrors{state}                          mirrors by state: up, down, unknown, disabled
//	sentry_mirror_failing_vantages{mirror}         vantage points an active mirror failed from at its last sweep
//	sentry_run_duration_seconds{kind}              primes and sweeps, histogram
//	sentry_runs_total{kind, outcome}               primes and sweeps ended, by outcome
//	sentry_last_completed_run_timestamp_seconds{kind}  end of the last sweep or prime that ran through
//	sentry_guard_activations_total{kind}           mass-failure guard activations
//	sentry_notifications_dropped_total             webhook events dropped (queue full or retries spent)
//
// Counters are this process's (each `sentry run` exports its own);
// sentry_mirrors and sentry_mirror_failing_vantages are read from the
// database at each scrape, so every instance reports the same truth. Go runtime and process metrics are
// included.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mirrorsentry/sentry/sentry/observe"
)

// Metrics is an Observer feeding a Prometheus registry.
type Metrics struct {
	reg          *prometheus.Registry
	checks       *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	runDuration  *prometheus.HistogramVec
	runs         *prometheus.CounterVec
	lastComplete *prometheus.GaugeVec
	guards       *prometheus.CounterVec
	dropped      prometheus.Counter
}

var _ observe.Observer = (*Metrics)(nil)

// New builds the metrics. pool, when not nil, is read at each scrape for
// the number of mirrors in each state and the vantage points each mirror
// fails from.
func New(pool *pgxpool.Pool, log *slog.Logger) *Metrics {
	m := &Metrics{
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
			Name: "sentry_runs_total", Help: "Primes and sweeps ended, by kind and outcome.",
		}, []string{"kind", "outcome"}),
		lastComplete: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sentry_last_completed_run_timestamp_seconds",
			Help: "Unix time at which the last prime or sweep of each kind ran through (outcome completed or guarded).",
		}, []string{"kind"}),
		guards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sentry_guard_activations_total", Help: "Times the mass-failure guard held back marking, by run kind.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sentry_notifications_dropped_total", Help: "Webhook notifications dropped: queue full or retries spent.",
		}),
	}
	m.reg.MustRegister(m.checks, m.bytes, m.runDuration, m.runs, m.lastComplete, m.guards, m.dropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if pool != nil {
		m.reg.MustRegister(&stateCollector{pool: pool, log: log})
	}
	// The series an alert would look for exist from the start, at 0.
	for _, kind := range []string{"prime", "sweep", "deep_sweep"} {
		m.guards.WithLabelValues(kind)
	}
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second})
}

// Registry is the metrics' own registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// NotificationDropped counts a webhook event given up on.
func (m *Metrics) NotificationDropped() { m.dropped.Inc() }

// CheckDone implements observe.Observer.
func (m *Metrics) CheckDone(c observe.CheckEvent) {
	m.checks.WithLabelValues(c.Mirror, string(c.Result)).Inc()
	if c.BytesVerified > 0 {
		m.bytes.WithLabelValues(c.Mirror).Add(float64(c.BytesVerified))
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
	if e.Outcome == "completed" || e.Outcome == "guarded" {
		m.lastComplete.WithLabelValues(e.Kind).Set(float64(e.Finished.UnixNano()) / 1e9)
	}
}

// stateCollector reads the number of mirrors in each state, and the
// vantage points each active mirror failed from, at scrape time: one
// query over sentry_mirror_state (a row per mirror).
type stateCollector struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

var (
	mirrorsDesc = prometheus.NewDesc("sentry_mirrors",
		"Mirrors by state: up or down (as sweeps judged them), unknown (never swept), disabled (mirror_mirrors.active off).",
		[]string{"state"}, nil)
	failingVantagesDesc = prometheus.NewDesc("sentry_mirror_failing_vantages",
		"Vantage points an active mirror failed from at its last sweep; above 0 on an up mirror: partially unreachable.",
		[]string{"mirror"}, nil)
	dbUpDesc = prometheus.NewDesc("sentry_database_up", "Whether the last scrape could read the database.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- mirrorsDesc
	ch <- failingVantagesDesc
	ch <- dbUpDesc
}

type mirrorState struct {
	name    string
	active  bool
	state   string
	failing int
}

func (c *stateCollector) read(ctx context.Context) ([]mirrorState, error) {
	rows, err := c.pool.Query(ctx, `
		SELECT m.name, m.active, coalesce(ms.state, 'unknown'), coalesce(cardinality(ms.failing_from), 0)
		FROM mirror_mirrors m LEFT JOIN sentry_mirror_state ms ON ms.mirror_id = m.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []mirrorState
	for rows.Next() {
		var s mirrorState
		if err := rows.Scan(&s.name, &s.active, &s.state, &s.failing); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	mirrors, err := c.read(ctx)
	if err != nil {
		if c.log != nil {
			c.log.Warn("metrics: cannot read mirror states", "err", err)
		}
		ch <- prometheus.MustNewConstMetric(dbUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(dbUpDesc, prometheus.GaugeValue, 1)
	counts := map[string]float64{"up": 0, "down": 0, "unknown": 0, "disabled": 0}
	for _, m := range mirrors {
		if !m.active {
			// A disabled mirror is not swept: its last verdicts are old.
			counts["disabled"]++
			continue
		}
		counts[m.state]++
		ch <- prometheus.MustNewConstMetric(failingVantagesDesc, prometheus.GaugeValue, float64(m.failing), m.name)
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(mirrorsDesc, prometheus.GaugeValue, n, state)
	}
}
