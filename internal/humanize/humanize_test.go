package humanize

import (
	"testing"
	"time"
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
