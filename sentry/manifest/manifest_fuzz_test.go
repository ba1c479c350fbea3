package manifest

import (
	"bytes"
	"errors"
	"path"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		// valid, each form
		a256 + "  firefox-1.5.tar.bz2\n" + a512 + " *win32/Firefox Setup 1.5.exe\n",
		"SHA256 (a b.exe) = " + a256 + "\nSHA512 (c (1).zip) = " + a512 + "\n",
		`\` + a256 + `  back\\slash` + "\n" + `\SHA512 (x\\y) = ` + a512 + "\n",
		amd5 + " md5 52428800 win32/en-US/Firefox Setup 1.5.exe\n" +
			asha + " sha1 52428800 win32/en-US/Firefox Setup 1.5.exe\n" +
			a512 + " sha512 52428800 win32/en-US/Firefox Setup 1.5.exe\n" +
			a256 + " sha256 52428800 win32/en-US/Firefox Setup 1.5.exe\n",
		"\uFEFF" + a256 + "  ./a/./b//c\r\n\r\n" + a256 + "  a/b/c",
		a256 + "  x\n" + a256 + "  x\n" + amd5 + " md5 3 x\n",
		// invalid
		"",
		"\n\n",
		"abc  x\n",
		a256 + "  /etc/passwd\n",
		a256 + "  a/../b\n",
		a256 + "  a\\..\\b\n",
		a256 + "  ..\\x\n",
		a256 + "  a\x00b\n",
		`\` + a256 + `  a\qb` + "\n",
		a256 + " sha384 5 x\n",
		a256 + " sha256 -5 x\n",
		amd5 + " md5 5 x\n",
		a256 + "  x\n" + b256 + "  x\n",
		a512 + " sha512 5 x\n" + a256 + " sha256 6 x\n",
		"BLAKE2b (x) = " + a256 + "\n",
		a256 + "  .\n",
		a256 + "  " + strings.Repeat("x", 300) + "\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(bytes.NewReader(data), "fuzz")
		if err != nil {
			var le *LineError
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &le) {
				t.Fatalf("error %v is not a *LineError wrapping ErrMalformed", err)
			}
			if lines := bytes.Count(data, []byte("\n")) + 1; le.Line < 0 || le.Line > lines {
				t.Fatalf("error on line %d of a %d-line input: %v", le.Line, lines, err)
			}
			return
		}
		entries := m.Entries()
		if len(entries) == 0 || m.Len() != len(entries) {
			t.Fatalf("success with %d entries, Len %d", len(entries), m.Len())
		}
		seen := make(map[string]bool)
		allSized := true
		for _, e := range entries {
			checkInvariants(t, e)
			if seen[e.Path] {
				t.Fatalf("duplicate entry %q", e.Path)
			}
			seen[e.Path] = true
			if got, ok := m.Lookup(e.Path); !ok || got != e {
				t.Fatalf("Lookup(%q) = %+v, %v; want %+v", e.Path, got, ok, e)
			}
			allSized = allSized && e.Size >= 0
		}

		// WriteSums + Parse round-trips paths, algorithms and hashes.
		var buf bytes.Buffer
		if err := WriteSums(&buf, entries); err != nil {
			t.Fatalf("WriteSums: %v", err)
		}
		m2, err := Parse(&buf, "roundtrip")
		if err != nil {
			t.Fatalf("Parse(WriteSums(...)): %v", err)
		}
		want := make([]Entry, len(entries))
		for i, e := range entries {
			e.Size, e.Line = -1, i+1
			want[i] = e
		}
		if got := m2.Entries(); !reflect.DeepEqual(got, want) {
			t.Fatalf("WriteSums round trip:\n got %+v\nwant %+v", got, want)
		}

		// The checksums style (writeChecksums) + Parse also keeps sizes.
		if !allSized {
			return
		}
		buf.Reset()
		if err := writeChecksums(&buf, entries); err != nil {
			t.Fatalf("writeChecksums: %v", err)
		}
		m3, err := Parse(&buf, "roundtrip")
		if err != nil {
			t.Fatalf("Parse(writeChecksums(...)): %v", err)
		}
		for i := range want {
			want[i].Size = entries[i].Size
		}
		if got := m3.Entries(); !reflect.DeepEqual(got, want) {
			t.Fatalf("checksums style round trip:\n got %+v\nwant %+v", got, want)
		}
	})
}

// checkInvariants fails t when e is not an entry Parse may return.
func checkInvariants(t *testing.T, e Entry) {
	t.Helper()
	p := e.Path
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == "." {
		t.Fatalf("path %q is not relative and clean", p)
	}
	if p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		t.Fatalf("path %q has a .. segment", p)
	}
	// Nor between backslashes, which a Windows mirror takes for separators.
	for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == ".." {
			t.Fatalf("path %q has a .. segment between backslashes", p)
		}
	}
	if !utf8.ValidString(p) || strings.ContainsFunc(p, unicode.IsControl) {
		t.Fatalf("path %q has a control character or invalid UTF-8", p)
	}
	if !e.Algo.Valid() || len(e.Hash) != e.Algo.HexLen() || !isLowerHex(e.Hash) {
		t.Fatalf("entry %+v: hash does not match its algorithm", e)
	}
	if e.Size < -1 || e.Line < 1 {
		t.Fatalf("entry %+v: bad size or line", e)
	}
}
