package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration that reads from YAML as a Go duration string
// ("90s", "15m", "1h30m") or with a day suffix ("7d", "1d12h"), which Go's
// own parser lacks but operators reach for when they write retention periods.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration the way ParseDuration reads it back.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML implements yaml.Unmarshaler. A bad value is reported as a
// yaml.TypeError carrying the line number, so it is collected with every
// other problem of the file instead of stopping at the first.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	return scalarYAML(n, d, `a duration such as "30s" or "7d"`, func(s string) (Duration, error) {
		v, err := ParseDuration(s)
		return Duration(v), err
	})
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ParseDuration parses a Go duration string, additionally accepting a
// leading whole number of days ("7d", "2d12h").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration, want e.g. \"30s\" or \"7d\"")
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q, want e.g. \"30s\" or \"7d\"", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q, want e.g. \"30s\" or \"7d\"", s)
	}
	return days + v, nil
}
