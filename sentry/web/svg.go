package web

import (
	"fmt"
	"html/template"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/internal/humanize"
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

// chart is a release's uptake over time, laid out for an SVG of W×H.
type chart struct {
	W, H         int
	Left, Bottom int
	Points       string // polyline points
	YMax         int
	XStart, XEnd string // axis labels
	YTicks       []tick
	Empty        bool
	Steps        []dot
}

type tick struct {
	Y     int
	Label string
}

type dot struct {
	X, Y  int
	Title string
}

// uptakeChart draws the number of mirrors holding the whole release
// against time, from the first prime to the last step (or now).
func uptakeChart(r *report.Release) *chart {
	c := &chart{W: 640, H: 240, Left: 40, Bottom: 210, YMax: max(r.ActiveMirrors, 1)}
	if r.FirstPrime == nil || len(r.OverTime) == 0 {
		c.Empty = true
		return c
	}
	start := *r.FirstPrime
	end := r.OverTime[len(r.OverTime)-1].At
	if span := end.Sub(start); span <= 0 {
		end = start.Add(time.Second)
	} else {
		end = end.Add(span / 10)
	}
	plotW, plotH := float64(c.W-c.Left-10), float64(c.Bottom-10)
	x := func(t time.Time) int {
		return c.Left + int(plotW*float64(t.Sub(start))/float64(end.Sub(start)))
	}
	y := func(n int) int { return c.Bottom - int(plotH*float64(n)/float64(c.YMax)) }
	pts := []string{fmt.Sprintf("%d,%d", x(start), y(0))}
	prev := 0
	for _, p := range r.OverTime {
		px := x(p.At)
		pts = append(pts, fmt.Sprintf("%d,%d", px, y(prev)), fmt.Sprintf("%d,%d", px, y(p.Mirrors)))
		c.Steps = append(c.Steps, dot{X: px, Y: y(p.Mirrors),
			Title: fmt.Sprintf("%s: %d mirrors complete", p.At.UTC().Format("2006-01-02 15:04:05"), p.Mirrors)})
		prev = p.Mirrors
	}
	pts = append(pts, fmt.Sprintf("%d,%d", x(end), y(prev)))
	c.Points = strings.Join(pts, " ")
	c.XStart = start.UTC().Format("Jan 2 15:04")
	c.XEnd = "+" + humanize.Duration(end.Sub(start))
	for _, n := range []int{0, c.YMax / 2, c.YMax} {
		c.YTicks = append(c.YTicks, tick{Y: y(n), Label: fmt.Sprint(n)})
	}
	return c
}
