package web

import (
	"fmt"
	"html/template"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/sentry/internal/humanize"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// funcs are the templates' helpers.
func funcs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"ago": func(t *time.Time) string {
			if t == nil {
				return "never"
			}
			return humanize.Ago(now().Sub(*t))
		},
		"agoT":  func(t time.Time) string { return humanize.Ago(now().Sub(t)) },
		"tls":   func(m report.MirrorRow) string { return m.TLSNote(now()) },
		"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
		"stampP": func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"kinds": func(m map[string]int64) string {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = fmt.Sprintf("%s %d", k, m[k])
			}
			return strings.Join(parts, ", ")
		},
		"percent": func(v *float64) string {
			if v == nil {
				return "n/a"
			}
			return fmt.Sprintf("%.0f%%", *v*100)
		},
		"seconds": func(v *float64) string {
			if v == nil {
				return "–"
			}
			return humanize.Duration(time.Duration(*v * float64(time.Second)))
		},
		"join": func(l []string) string { return strings.Join(l, ", ") },
		// lastSweep says what vantage point v made of mirror m at its
		// last sweep.
		"lastSweep": func(m report.MirrorRow, v string) string {
			for _, f := range m.FailingFrom {
				if f == v {
					return "failed"
				}
			}
			for _, c := range m.CheckedFrom {
				if c == v {
					return "reached"
				}
			}
			return "did not check"
		},
		"in": func(t time.Time) string {
			if d := t.Sub(now()); d > 0 {
				return "in " + humanize.Duration(d)
			}
			return "now"
		},
		"took": func(start time.Time, end *time.Time) string {
			if end == nil {
				return "running"
			}
			return humanize.Duration(end.Sub(start))
		},
		"kind":  func(k string) string { return strings.ReplaceAll(k, "_", " ") },
		"cell":  stripCell,
		"path":  url.PathEscape,
		"bytes": humanize.Bytes,
	}
}

// cell is one day of a history strip: its position, colour and tooltip.
type cell struct {
	X     int
	Fill  string
	Title string
}

// stripCell colours a day by its share of failed checks: grey without
// checks, green without failures, then yellow, orange and red.
func stripCell(i int, d report.Day) cell {
	c := cell{X: i * 9, Fill: "#d0d0d0"}
	day := d.Start.UTC().Format("2006-01-02")
	if d.Checks == 0 {
		c.Title = day + ": no checks"
		return c
	}
	share := float64(d.Failures) / float64(d.Checks)
	switch {
	case d.Failures == 0:
		c.Fill = "#2e9e44"
	case share < 0.05:
		c.Fill = "#b5c832"
	case share < 0.5:
		c.Fill = "#f0a020"
	default:
		c.Fill = "#d43a2f"
	}
	c.Title = fmt.Sprintf("%s: %d checks, %d failed (%.1f%%)", day, d.Checks, d.Failures, share*100)
	return c
}

// chart is a release's uptake over time, laid out for an SVG whose
// viewBox is W×H, drawn as wide as the page (CSS width 100%).
type chart struct {
	W, H                     int
	Left, Right, Top, Bottom int // the plot area
	Points                   string
	YMax                     int
	XTicks, YTicks           []tick
	// Mark is the x of the 10-minute target after the first prime.
	Mark int
	// MidX and MidY centre the axis labels; TickEnd is where the time
	// axis's ticks end.
	MidX, MidY, TickEnd int
	XLabel              string
	YLabel              string
	Empty               bool
	Steps               []dot
	Start               string // the first prime, for the caption
}

type tick struct {
	X, Y  int
	Label string
}

type dot struct {
	X, Y  int
	Title string
}

// target is the 10-minute mark of the chart: the time by which a release
// should be on every good mirror.
const target = 10 * time.Minute

// tickSteps are the candidate spacings of the time axis's ticks.
var tickSteps = []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
	30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// uptakeChart draws the number of mirrors holding the whole release
// against the time since its first prime: a step per mirror completing,
// labelled axes, and the 10-minute mark (the axis runs to at least 12
// minutes, so the mark always shows).
func uptakeChart(r *report.Release) *chart {
	c := &chart{W: 960, H: 320, Left: 64, Right: 928, Top: 16, Bottom: 264, YMax: max(r.ActiveMirrors, 1),
		XLabel: "time since the first prime", YLabel: "mirrors holding every file"}
	if r.FirstPrime == nil || len(r.OverTime) == 0 {
		c.Empty = true
		return c
	}
	start := *r.FirstPrime
	last := r.OverTime[len(r.OverTime)-1].At
	span := max(last.Sub(start), 0)
	end := start.Add(max(span+span/10, target+2*time.Minute))
	total := end.Sub(start)
	plotW, plotH := float64(c.Right-c.Left), float64(c.Bottom-c.Top)
	x := func(d time.Duration) int { return c.Left + int(plotW*float64(d)/float64(total)) }
	y := func(n int) int { return c.Bottom - int(plotH*float64(n)/float64(c.YMax)) }
	pts := []string{fmt.Sprintf("%d,%d", x(0), y(0))}
	prev := 0
	for _, p := range r.OverTime {
		px := x(p.At.Sub(start))
		pts = append(pts, fmt.Sprintf("%d,%d", px, y(prev)), fmt.Sprintf("%d,%d", px, y(p.Mirrors)))
		c.Steps = append(c.Steps, dot{X: px, Y: y(p.Mirrors),
			Title: fmt.Sprintf("+%s (%s): %d mirrors complete", humanize.Duration(p.At.Sub(start)),
				p.At.UTC().Format("2006-01-02 15:04:05"), p.Mirrors)})
		prev = p.Mirrors
	}
	pts = append(pts, fmt.Sprintf("%d,%d", x(total), y(prev)))
	c.Points = strings.Join(pts, " ")
	c.Mark = x(target)
	c.MidX, c.MidY, c.TickEnd = (c.Left+c.Right)/2, (c.Top+c.Bottom)/2, c.Bottom+5
	c.Start = start.UTC().Format("2006-01-02 15:04 UTC")
	step := tickSteps[len(tickSteps)-1]
	for _, s := range tickSteps {
		if total/s <= 8 {
			step = s
			break
		}
	}
	for d := time.Duration(0); d <= total; d += step {
		label := "0"
		switch {
		case d == 0:
		case d%(24*time.Hour) == 0:
			label = fmt.Sprintf("+%dd", d/(24*time.Hour))
		case d%time.Hour == 0:
			label = fmt.Sprintf("+%dh", d/time.Hour)
		default:
			label = fmt.Sprintf("+%dm", d/time.Minute)
		}
		c.XTicks = append(c.XTicks, tick{X: x(d), Y: c.Bottom, Label: label})
	}
	for _, n := range []int{0, c.YMax / 2, c.YMax} {
		c.YTicks = append(c.YTicks, tick{X: c.Left, Y: y(n), Label: fmt.Sprint(n)})
	}
	return c
}
