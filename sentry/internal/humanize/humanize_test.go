package humanize

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Bytes(512), "512 B"},
		{Bytes(70_000), "68.4 KiB"},
		{Bytes(3 << 30), "3.0 GiB"},
		{Clip("mirror.example.net", 10), "mirror.ex…"},
		{Clip("short", 10), "short"},
		{Clip("anything", 0), ""},
		{ClipLeft("win32/de/Firefox Setup.exe", 12), "…x Setup.exe"},
		{Ago(-time.Second), "just now"},
		{Ago(42 * time.Second), "42s ago"},
		{Ago(90 * time.Minute), "1h ago"},
		{Ago(72 * time.Hour), "3d ago"},
		{Duration(1234 * time.Millisecond), "1.2s"},
		{Duration(90*time.Second + 400*time.Millisecond), "1m30s"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		s     string
		width int
		want  string
	}{
		{"short", 20, "short"},
		{"one two three four", 9, "one two\n  three\n  four"},
		{"a " + strings.Repeat("x", 30), 10, "a\n  xxxxxxx…"},
		{"", 10, ""},
	}
	for _, tt := range tests {
		if got := Wrap(tt.s, tt.width, "  "); got != tt.want {
			t.Errorf("Wrap(%q, %d) = %q, want %q", tt.s, tt.width, got, tt.want)
		}
		for _, line := range strings.Split(Wrap(tt.s, tt.width, "  "), "\n") {
			if utf8.RuneCountInString(line) > tt.width {
				t.Errorf("Wrap(%q, %d): line %q too long", tt.s, tt.width, line)
			}
		}
	}
}

// TestClipIsSafe: a field is made safe before it is clipped, so that no
// escape is cut in half and the width is the one a terminal shows.
func TestClipIsSafe(t *testing.T) {
	name := "evil\x1b]0;pwned\x07\r\u202Egnp.exe"
	for n := 1; n < 40; n++ {
		for _, got := range []string{Clip(name, n), ClipLeft(name, n), Wrap(name, n, "")} {
			if strings.ContainsAny(got, "\x1b\x07\r\u202E") {
				t.Fatalf("width %d: %q holds a raw control", n, got)
			}
			for _, line := range strings.Split(got, "\n") {
				if utf8.RuneCountInString(line) > n {
					t.Errorf("width %d: %q is wider", n, line)
				}
			}
		}
	}
	if got, want := Clip(name, 40), "evil␛]0;pwned␇␍[U+202E]gnp.exe"; got != want {
		t.Errorf("Clip = %q, want %q", got, want)
	}
	if Width(name) != utf8.RuneCountInString("evil␛]0;pwned␇␍[U+202E]gnp.exe") {
		t.Errorf("Width = %d", Width(name))
	}
}
