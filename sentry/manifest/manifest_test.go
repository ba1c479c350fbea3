package manifest

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

// Digests of fixed strings, so that tests use real-looking hashes.
func h256(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
func h512(s string) string { d := sha512.Sum512([]byte(s)); return hex.EncodeToString(d[:]) }
func hmd5(s string) string { d := md5.Sum([]byte(s)); return hex.EncodeToString(d[:]) }
func hsha1(s string) string {
	d := sha1.Sum([]byte(s))
	return hex.EncodeToString(d[:])
}

var (
	a256 = h256("a")
	b256 = h256("b")
	a512 = h512("a")
	b512 = h512("b")
	amd5 = hmd5("a")
	asha = hsha1("a")
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []Entry
	}{
		{
			name:  "coreutils sha256 text mode",
			input: a256 + "  firefox-1.5.tar.bz2\n" + b256 + "  linux-x86_64/en-US/firefox-1.5.tar.bz2\n",
			want: []Entry{
				{Path: "firefox-1.5.tar.bz2", Algo: SHA256, Hash: a256, Size: -1, Line: 1},
				{Path: "linux-x86_64/en-US/firefox-1.5.tar.bz2", Algo: SHA256, Hash: b256, Size: -1, Line: 2},
			},
		},
		{
			name:  "coreutils sha512 binary marker",
			input: a512 + " *win32/Firefox Setup 1.5.exe\n",
			want:  []Entry{{Path: "win32/Firefox Setup 1.5.exe", Algo: SHA512, Hash: a512, Size: -1, Line: 1}},
		},
		{
			name:  "upper-case hash is normalised",
			input: strings.ToUpper(a256) + "  x\n",
			want:  []Entry{{Path: "x", Algo: SHA256, Hash: a256, Size: -1, Line: 1}},
		},
		{
			name:  "names with spaces, leading and trailing",
			input: a256 + "  dir/Firefox Setup 1.5.exe\n" + b256 + "   lead and trail \n",
			want: []Entry{
				{Path: "dir/Firefox Setup 1.5.exe", Algo: SHA256, Hash: a256, Size: -1, Line: 1},
				{Path: " lead and trail ", Algo: SHA256, Hash: b256, Size: -1, Line: 2},
			},
		},
		{
			name:  "name starting with a star in text mode",
			input: a256 + "  *star\n",
			want:  []Entry{{Path: "*star", Algo: SHA256, Hash: a256, Size: -1, Line: 1}},
		},
		{
			name:  "BSD tag form sha256 and sha512",
			input: "SHA256 (a b.exe) = " + a256 + "\nSHA512 (dir/c (1).zip) = " + a512 + "\n",
			want: []Entry{
				{Path: "a b.exe", Algo: SHA256, Hash: a256, Size: -1, Line: 1},
				{Path: "dir/c (1).zip", Algo: SHA512, Hash: a512, Size: -1, Line: 2},
			},
		},
		{
			name:  "BSD tag form with ') = ' in the name",
			input: "SHA256 (x) = y) = " + a256 + "\n",
			want:  []Entry{{Path: "x) = y", Algo: SHA256, Hash: a256, Size: -1, Line: 1}},
		},
		{
			name:  "escaped coreutils form",
			input: `\` + a256 + `  back\\slash` + "\n" + `\` + a512 + ` *plain` + "\n",
			want: []Entry{
				{Path: `back\slash`, Algo: SHA256, Hash: a256, Size: -1, Line: 1},
				{Path: "plain", Algo: SHA512, Hash: a512, Size: -1, Line: 2},
			},
		},
		{
			name:  "escaped tag form",
			input: `\SHA256 (a\\b) = ` + a256 + "\n",
			want:  []Entry{{Path: `a\b`, Algo: SHA256, Hash: a256, Size: -1, Line: 1}},
		},
		{
			name:  "unescaped backslash is literal",
			input: a256 + `  a\b` + "\n",
			want:  []Entry{{Path: `a\b`, Algo: SHA256, Hash: a256, Size: -1, Line: 1}},
		},
		{
			name:  "CRLF, blank lines, BOM and missing final newline",
			input: "\uFEFF" + a256 + "  x\r\n\r\n   \t\r\n" + b256 + "  y",
			want: []Entry{
				{Path: "x", Algo: SHA256, Hash: a256, Size: -1, Line: 1},
				{Path: "y", Algo: SHA256, Hash: b256, Size: -1, Line: 4},
			},
		},
		{
			name:  "leading ./ stripped and path cleaned",
			input: a256 + "  ./a/./b//c\n" + b256 + " *././d\n",
			want: []Entry{
				{Path: "a/b/c", Algo: SHA256, Hash: a256, Size: -1, Line: 1},
				{Path: "d", Algo: SHA256, Hash: b256, Size: -1, Line: 2},
			},
		},
		{
			name: "mozilla sha512 with md5 and sha1 lines ignored",
			input: amd5 + " md5 52428800 win32/en-US/Firefox Setup 1.5.exe\n" +
				asha + " sha1 52428800 win32/en-US/Firefox Setup 1.5.exe\n" +
				a512 + " sha512 52428800 win32/en-US/Firefox Setup 1.5.exe\n",
			want: []Entry{{Path: "win32/en-US/Firefox Setup 1.5.exe", Algo: SHA512, Hash: a512, Size: 52428800, Line: 3}},
		},
		{
			name:  "mozilla sha256, zero size, upper-case algorithm",
			input: a256 + " SHA256 0 empty.txt\n",
			want:  []Entry{{Path: "empty.txt", Algo: SHA256, Hash: a256, Size: 0, Line: 1}},
		},
		{
			name:  "mozilla sha256 preferred over sha512, position kept",
			input: a512 + " sha512 10 x\n" + b256 + " sha256 10 y\n" + a256 + " sha256 10 x\n" + b512 + " sha512 10 y\n",
			want: []Entry{
				{Path: "x", Algo: SHA256, Hash: a256, Size: 10, Line: 3},
				{Path: "y", Algo: SHA256, Hash: b256, Size: 10, Line: 2},
			},
		},
		{
			name:  "size from a weak line fills a coreutils entry",
			input: a256 + "  x\n" + amd5 + " md5 7 x\n",
			want:  []Entry{{Path: "x", Algo: SHA256, Hash: a256, Size: 7, Line: 1}},
		},
		{
			name:  "tagged md5 ignored beside sha256",
			input: "MD5 (x) = " + amd5 + "\nSHA256 (x) = " + a256 + "\n",
			want:  []Entry{{Path: "x", Algo: SHA256, Hash: a256, Size: -1, Line: 2}},
		},
		{
			name:  "identical duplicates are fine",
			input: a256 + "  x\n" + a256 + " *./x\n" + "SHA256 (x) = " + strings.ToUpper(a256) + "\n" + a256 + " sha256 3 x\n" + a256 + " sha256 3 x\n",
			want:  []Entry{{Path: "x", Algo: SHA256, Hash: a256, Size: 3, Line: 1}},
		},
		{
			name:  "mixed formats in one manifest",
			input: a256 + "  a\nSHA512 (b) = " + a512 + "\n" + b256 + " sha256 5 c d\n",
			want: []Entry{
				{Path: "a", Algo: SHA256, Hash: a256, Size: -1, Line: 1},
				{Path: "b", Algo: SHA512, Hash: a512, Size: -1, Line: 2},
				{Path: "c d", Algo: SHA256, Hash: b256, Size: 5, Line: 3},
			},
		},
		{
			name:  "unicode names",
			input: a256 + "  de/Fírefox – Sétup.exe\n",
			want:  []Entry{{Path: "de/Fírefox – Sétup.exe", Algo: SHA256, Hash: a256, Size: -1, Line: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(strings.NewReader(tt.input), "SUMS")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := m.Entries()
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("entries:\n got %+v\nwant %+v", got, tt.want)
			}
			if m.Len() != len(tt.want) {
				t.Errorf("Len = %d, want %d", m.Len(), len(tt.want))
			}
			for _, w := range tt.want {
				e, ok := m.Lookup(w.Path)
				if !ok || e != w {
					t.Errorf("Lookup(%q) = %+v, %v; want %+v", w.Path, e, ok, w)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("x", MaxLineLength)
	tests := []struct {
		name  string
		input string
		line  int
		msg   string // substring of the message
	}{
		{"malformed no space", a256 + "\n", 1, "malformed line"},
		{"malformed garbage", a256 + "  ok\nhello world\n", 2, "malformed line"},
		{"malformed prose", "this is not a manifest\n", 1, "malformed line"},
		{"malformed comment", "# SHA256SUMS\n", 1, "malformed line"},
		{"malformed mozilla missing path", a256 + " sha256 5\n", 1, "malformed line"},
		{"malformed mozilla double space", a256 + " sha256  5 x\n", 1, "malformed line"},
		{"malformed tag", "SHA256 (x) " + a256 + "\n", 1, "malformed tagged line"},
		{"escaped mozilla", `\` + a256 + " sha256 5 x\n", 1, "malformed line"},
		{"coreutils short hash", a256 + "  x\nabc  y\n", 2, `hash "abc" is not 64 (sha256) or 128 (sha512) hexadecimal digits`},
		{"coreutils md5 length", amd5 + "  x\n", 1, "is not 64 (sha256) or 128 (sha512)"},
		{"coreutils non-hex", strings.Repeat("g", 64) + "  x\n", 1, "is not 64 hexadecimal digits (sha256)"},
		{"coreutils empty hash", "  x\n", 1, `hash "" is not 64`},
		{"tag wrong length", "SHA512 (x) = " + a256 + "\n", 1, "is not 128 hexadecimal digits (sha512)"},
		{"tag non-hex", "SHA256 (x) = " + strings.Repeat("z", 64) + "\n", 1, "is not 64 hexadecimal digits"},
		{"tag unknown algorithm", "BLAKE2b (x) = " + a256 + "\n", 1, `unsupported hash algorithm "BLAKE2b"`},
		{"mozilla wrong length", a256 + " sha512 5 x\n", 1, "is not 128 hexadecimal digits (sha512)"},
		{"mozilla bad md5", a256 + "  x\n" + "abc md5 5 x\n", 2, `hash "abc" is not 32 hexadecimal digits (md5)`},
		{"mozilla bad sha1", a256 + "  x\n" + amd5 + " sha1 5 x\n", 2, "is not 40 hexadecimal digits (sha1)"},
		{"mozilla unknown algorithm", a256 + " sha384 5 x\n", 1, `unsupported hash algorithm "sha384"`},
		{"mozilla negative size", a256 + " sha256 -5 x\n", 1, `size "-5" is negative`},
		{"mozilla non-integer size", a256 + " sha256 5.0 x\n", 1, `size "5.0" is not a non-negative integer`},
		{"mozilla plus size", a256 + " sha256 +5 x\n", 1, `size "+5" is not a non-negative integer`},
		{"mozilla huge size", a256 + " sha256 99999999999999999999 x\n", 1, "is out of range"},
		{"duplicate different hash", a256 + "  x\n" + a256 + "  y\n" + b256 + "  ./x\n", 3, `duplicate path "x" with a different sha256 hash than on line 1`},
		{"duplicate different sha512", "SHA512 (x) = " + a512 + "\n" + b512 + " *x\n", 2, "different sha512 hash than on line 1"},
		{"duplicate different size", a512 + " sha512 5 x\n" + a256 + " sha256 6 x\n", 2, `duplicate path "x" with size 6, but size 5 on line 1`},
		{"duplicate weak size differs", a512 + " sha512 5 x\n" + amd5 + " md5 6 x\n", 2, "size 5 on line 1"},
		{"duplicate weak hash differs", amd5 + " md5 5 x\n" + hmd5("b") + " md5 5 x\n", 2, "different md5 hash than on line 1"},
		{"only weak hashes", a256 + "  y\n" + amd5 + " md5 5 x\n" + asha + " sha1 5 x\n", 2, `no sha256 or sha512 hash for "x"`},
		{"only weak, earliest reported", amd5 + " md5 5 b\n" + amd5 + " md5 5 a\n" + a256 + "  c\n", 1, `no sha256 or sha512 hash for "b"`},
		{"only weak tagged", "MD5 (x) = " + amd5 + "\n", 1, `no sha256 or sha512 hash for "x"`},
		{"absolute path", a256 + "  /etc/passwd\n", 1, `path "/etc/passwd" is absolute`},
		{"dotdot segment", a256 + "  a/../../etc/passwd\n", 1, `has a ".." segment`},
		{"dotdot inside", a256 + "  a/../b\n", 1, `has a ".." segment`},
		{"dotdot alone", a256 + "  ..\n", 1, `has a ".." segment`},
		{"dotdot mozilla", a256 + " sha256 5 ../x\n", 1, `has a ".." segment`},
		{"dotdot tag", "SHA256 (x/..) = " + a256 + "\n", 1, `has a ".." segment`},
		{"empty path text", a256 + "  \n", 1, "empty path"},
		{"empty path binary", a256 + " *\n", 1, "empty path"},
		{"empty path tag", "SHA256 () = " + a256 + "\n", 1, "empty path"},
		{"empty path mozilla", a256 + " sha256 5 \n", 1, "empty path"},
		{"dot path", a256 + "  ./\n", 1, "ends in a slash"},
		{"dot only", a256 + "  .\n", 1, "names the release directory itself"},
		{"trailing slash", a256 + "  dir/\n", 1, "ends in a slash"},
		{"NUL in path", a256 + "  a\x00b\n", 1, "contains a NUL character"},
		{"tab in path", a256 + "  a\tb\n", 1, "control character U+0009"},
		{"CR inside path", a256 + "  a\rb\n", 1, "control character U+000D"},
		{"C1 control in path", a256 + "  a\u0085b\n", 1, "control character U+0085"},
		{"DEL in path", a256 + "  a\x7fb\n", 1, "control character U+007F"},
		{"invalid UTF-8", a256 + "  a\xffb\n", 1, "not valid UTF-8"},
		{"escaped newline is a control character", `\` + a256 + `  a\nb` + "\n", 1, "control character U+000A"},
		{"bad escape", `\` + a256 + `  a\tb` + "\n", 1, `bad escape in path "a\\tb"`},
		{"trailing backslash escape", `\` + a256 + `  a\` + "\n", 1, "trailing backslash"},
		{"bad escape in tag", `\SHA256 (a\x) = ` + a256 + "\n", 1, "bad escape"},
		{"line too long", a256 + "  ok\n" + a256 + "  " + long + "\n", 2, "line is longer than 65536 bytes"},
		{"line too long without newline", a256 + "  ok\n\n" + strings.Repeat("y", 3*MaxLineLength), 3, "line is longer than 65536 bytes"},
		{"line one byte too long", a256 + "  " + long[:MaxLineLength-65] + "\n", 1, "line is longer than"},
		{"empty manifest", "", 0, "manifest has no entries"},
		{"only blank lines", "\n\r\n  \n", 0, "manifest has no entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(strings.NewReader(tt.input), "SHA256SUMS")
			if err == nil {
				t.Fatalf("Parse succeeded with %d entries, want error", m.Len())
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v is not a *LineError", err)
			}
			if le.Name != "SHA256SUMS" || le.Line != tt.line {
				t.Errorf("error at %s:%d, want SHA256SUMS:%d (%v)", le.Name, le.Line, tt.line, err)
			}
			if !strings.Contains(le.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", le.Msg, tt.msg)
			}
			prefix := fmt.Sprintf("SHA256SUMS:%d: ", tt.line)
			if tt.line == 0 {
				prefix = "SHA256SUMS: "
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), prefix)
			}
			if len(err.Error()) > 400 {
				t.Errorf("error message is %d bytes long, want it truncated", len(err.Error()))
			}
		})
	}
}

// TestParseLineLengthBoundary checks that a line of exactly MaxLineLength
// bytes, with either line end, is accepted.
func TestParseLineLengthBoundary(t *testing.T) {
	name := strings.Repeat("n", MaxLineLength-len(a256)-2)
	for _, end := range []string{"\n", "\r\n", ""} {
		m, err := Parse(strings.NewReader(a256+"  "+name+end), "SUMS")
		if err != nil {
			t.Fatalf("line end %q: %v", end, err)
		}
		if _, ok := m.Lookup(name); !ok {
			t.Errorf("line end %q: long name not found", end)
		}
	}
}

func TestLineErrorMessage(t *testing.T) {
	_, err := Parse(strings.NewReader(a256+"  x\n\n"+a256+"  y\nabc  z\n"), "SHA256SUMS")
	want := `SHA256SUMS:4: hash "abc" is not 64 (sha256) or 128 (sha512) hexadecimal digits`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

type failingReader struct{ data io.Reader }

var errBroken = errors.New("connection reset")

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.data.Read(p)
	if err == io.EOF {
		return n, errBroken
	}
	return n, err
}

func TestParseReadError(t *testing.T) {
	_, err := Parse(&failingReader{strings.NewReader(a256 + "  x\n")}, "https://staging.example.org/SHA256SUMS")
	if !errors.Is(err, errBroken) {
		t.Fatalf("error %v does not wrap the read error", err)
	}
	if errors.Is(err, ErrMalformed) {
		t.Errorf("read error %v wraps ErrMalformed", err)
	}
	if !strings.Contains(err.Error(), "after line 1") {
		t.Errorf("error %q does not say where reading stopped", err)
	}
}

func TestEntriesIsACopy(t *testing.T) {
	m, err := Parse(strings.NewReader(a256+"  x\n"), "SUMS")
	if err != nil {
		t.Fatal(err)
	}
	m.Entries()[0].Path = "changed"
	if e, ok := m.Lookup("x"); !ok || e.Path != "x" {
		t.Errorf("mutating Entries() changed the manifest: %+v, %v", e, ok)
	}
	if _, ok := m.Lookup("./x"); ok {
		t.Errorf("Lookup matched an unclean path")
	}
}

func TestAlgo(t *testing.T) {
	for _, tt := range []struct {
		algo Algo
		hex  string
	}{{SHA256, h256("hello")}, {SHA512, h512("hello")}} {
		if !tt.algo.Valid() || tt.algo.HexLen() != len(tt.hex) {
			t.Errorf("%s: Valid %v HexLen %d", tt.algo, tt.algo.Valid(), tt.algo.HexLen())
		}
		h := tt.algo.New()
		io.WriteString(h, "hello")
		if got := hex.EncodeToString(h.Sum(nil)); got != tt.hex {
			t.Errorf("%s.New() digest %s, want %s", tt.algo, got, tt.hex)
		}
	}
	if Algo("md5").Valid() || Algo("md5").HexLen() != 0 {
		t.Errorf("md5 reported valid")
	}
	defer func() {
		if recover() == nil {
			t.Errorf("Algo(\"md5\").New() did not panic")
		}
	}()
	Algo("md5").New()
}

func TestRoundTrip(t *testing.T) {
	entries := []Entry{
		{Path: "firefox-1.5.tar.bz2", Algo: SHA256, Hash: a256, Size: 123, Line: 1},
		{Path: "win32/en-US/Firefox Setup 1.5.exe", Algo: SHA512, Hash: a512, Size: 52428800, Line: 2},
		{Path: `odd\name (1) = x`, Algo: SHA256, Hash: b256, Size: 0, Line: 3},
		{Path: " spaced ", Algo: SHA512, Hash: b512, Size: 7, Line: 4},
		{Path: "*star", Algo: SHA256, Hash: h256("c"), Size: 1, Line: 5},
	}
	t.Run("WriteSums", func(t *testing.T) {
		var buf bytes.Buffer
		if err := WriteSums(&buf, entries); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), `\`+b256+`  odd\\name (1) = x`+"\n") {
			t.Errorf("backslash name not written in escaped form:\n%s", buf.String())
		}
		m, err := Parse(&buf, "SUMS")
		if err != nil {
			t.Fatal(err)
		}
		want := make([]Entry, len(entries))
		for i, e := range entries {
			e.Size = -1 // coreutils style carries no size
			want[i] = e
		}
		if got := m.Entries(); !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
		}
	})
	t.Run("checksums style", func(t *testing.T) {
		var buf bytes.Buffer
		if err := writeChecksums(&buf, entries); err != nil {
			t.Fatal(err)
		}
		m, err := Parse(&buf, "SUMS.checksums")
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Entries(); !reflect.DeepEqual(got, entries) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, entries)
		}
	})
}

func TestWriteRejectsInvalidEntries(t *testing.T) {
	tests := []struct {
		name  string
		entry Entry
	}{
		{"unclean path", Entry{Path: "./x", Algo: SHA256, Hash: a256, Size: 1}},
		{"absolute path", Entry{Path: "/x", Algo: SHA256, Hash: a256, Size: 1}},
		{"dotdot", Entry{Path: "../x", Algo: SHA256, Hash: a256, Size: 1}},
		{"newline in path", Entry{Path: "a\nb", Algo: SHA256, Hash: a256, Size: 1}},
		{"empty path", Entry{Algo: SHA256, Hash: a256, Size: 1}},
		{"md5", Entry{Path: "x", Algo: "md5", Hash: amd5, Size: 1}},
		{"wrong hash length", Entry{Path: "x", Algo: SHA512, Hash: a256, Size: 1}},
		{"upper-case hash", Entry{Path: "x", Algo: SHA256, Hash: strings.ToUpper(a256), Size: 1}},
		{"negative size", Entry{Path: "x", Algo: SHA256, Hash: a256, Size: -2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := Entry{Path: "ok", Algo: SHA256, Hash: b256, Size: 1}
			var buf bytes.Buffer
			err := WriteSums(&buf, []Entry{good, tt.entry})
			if !errors.Is(err, ErrInvalidEntry) || buf.Len() != 0 {
				t.Errorf("WriteSums: err %v, wrote %d bytes; want ErrInvalidEntry and nothing", err, buf.Len())
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteError(t *testing.T) {
	err := WriteSums(failingWriter{}, []Entry{{Path: "x", Algo: SHA256, Hash: a256, Size: -1}})
	if !errors.Is(err, os.ErrClosed) {
		t.Errorf("WriteSums to a failing writer: %v", err)
	}
}

// syntheticManifest returns a Mozilla-style manifest of n files with md5,
// sha1 and sha512 lines each (3n lines), like a real Firefox release.
func syntheticManifest(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		p := fmt.Sprintf("win32/lang-%04d/Firefox Setup 1.5.exe", i)
		s := fmt.Sprint(i)
		fmt.Fprintf(&b, "%s md5 52428800 %s\n", hmd5(s), p)
		fmt.Fprintf(&b, "%s sha1 52428800 %s\n", hsha1(s), p)
		fmt.Fprintf(&b, "%s sha512 52428800 %s\n", h512(s), p)
	}
	return b.Bytes()
}

// syntheticSums returns a coreutils SHA256SUMS of n lines.
func syntheticSums(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "%s  linux-x86_64/lang-%05d/firefox-1.5.tar.bz2\n", h256(fmt.Sprint(i)), i)
	}
	return b.Bytes()
}

func TestSyntheticManifests(t *testing.T) {
	m, err := Parse(bytes.NewReader(syntheticManifest(1000)), "checksums")
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 1000 {
		t.Errorf("Len = %d, want 1000", m.Len())
	}
	e, ok := m.Lookup("win32/lang-0999/Firefox Setup 1.5.exe")
	if !ok || e.Algo != SHA512 || e.Size != 52428800 || e.Line != 3000 || e.Hash != h512("999") {
		t.Errorf("Lookup = %+v, %v", e, ok)
	}
}

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"sha256sums-10000", syntheticSums(10000)},
		{"mozilla-10000", syntheticManifest(10000 / 3)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bytes.NewReader(bc.data), "bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func ExampleParse() {
	const sums = "" +
		"SHA256 (firefox-1.5.tar.bz2) = 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n" +
		"a9993e364706816aba3e25717850c26c9cd0d89d sha1 5 win32/Firefox Setup 1.5.exe\n" +
		"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 sha256 5 win32/Firefox Setup 1.5.exe\n"
	m, err := Parse(strings.NewReader(sums), "SHA256SUMS")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range m.Entries() {
		fmt.Printf("%s %s size=%d line=%d\n", e.Path, e.Algo, e.Size, e.Line)
	}
	_, err = Parse(strings.NewReader("abc  x\n"), "SHA256SUMS")
	fmt.Println(err)
	// Output:
	// firefox-1.5.tar.bz2 sha256 size=-1 line=1
	// win32/Firefox Setup 1.5.exe sha256 size=5 line=3
	// SHA256SUMS:1: hash "abc" is not 64 (sha256) or 128 (sha512) hexadecimal digits
}
