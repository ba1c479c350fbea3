package config

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes that reads from YAML as a whole number of
// bytes ("16384") or with a binary unit: B, KiB, MiB or GiB ("16KiB",
// "1 MiB"). Decimal units (KB, MB) are refused rather than guessed at.
type Size int64

// Bytes returns the value in bytes.
func (s Size) Bytes() int64 { return int64(s) }

var sizeUnits = []struct {
	name string
	mult int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// String formats the size in the largest unit that divides it.
func (s Size) String() string {
	for _, u := range sizeUnits {
		if s != 0 && int64(s)%u.mult == 0 && u.mult > 1 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// ParseSize parses a size: "16384", "16KiB", "16 KiB", "1MiB".
func ParseSize(v string) (Size, error) {
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range sizeUnits {
		if len(s) > len(u.name) && strings.EqualFold(s[len(s)-len(u.name):], u.name) {
			mult, s = u.mult, strings.TrimSpace(s[:len(s)-len(u.name)])
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q, want bytes or a number with KiB, MiB or GiB (\"16384\", \"16KiB\")", v)
	}
	return Size(n * mult), nil
}

// UnmarshalYAML implements yaml.Unmarshaler; a bad value is a
// yaml.TypeError with its line, collected with the file's other problems.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	return scalarYAML(n, s, `a size such as 16384 or "16KiB"`, ParseSize)
}

// scalarYAML decodes the scalar n into *v with parse. A node that is not a
// scalar (want says what is wanted) or a value parse refuses is reported
// as a yaml.TypeError carrying the line number, so that it is collected
// with every other problem of the file instead of stopping at the first.
func scalarYAML[T any](n *yaml.Node, v *T, want string, parse func(string) (T, error)) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want %s", n.Line, want)}}
	}
	x, err := parse(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*v = x
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }
