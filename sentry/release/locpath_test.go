package release

import (
	"slices"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/primer"
)

// TestLocationPathForms: a stored location path, raw or percent-escaped as
// Mozilla's data writes it, is unescaped once to find its manifest entry,
// and the URL sentry requests for it is the one the redirector builds from
// the stored path (base URL + path, ":lang" replaced) — escaped once,
// never twice. A path whose escapes are invalid, or that unescapes to
// something outside the release directory, stands for no file.
func TestLocationPathForms(t *testing.T) {
	const dir = "/firefox/releases/39.0/"
	good := []struct {
		stored, lang, file string
	}{
		{"/firefox/releases/39.0/win32/:lang/Firefox Setup 39.0.exe", "de", "win32/de/Firefox Setup 39.0.exe"},
		{"/firefox/releases/39.0/win32/:lang/Firefox%20Setup%2039.0.exe", "de", "win32/de/Firefox Setup 39.0.exe"},
		{"/firefox/releases/39.0/win32/:lang/Firefox%20Setup 39.0.exe", "fr", "win32/fr/Firefox Setup 39.0.exe"},
		{"/firefox/releases/39%2E0/win32/:lang/Firefox%20Setup%2039.0.exe", "de", "win32/de/Firefox Setup 39.0.exe"},
		{"/firefox/releases/39.0/mac/:lang/Firefox%2039.0.dmg", "ja-JP-mac", "mac/ja-JP-mac/Firefox 39.0.dmg"},
		{"/firefox/releases/39.0/source/firefox-39.0.source.tar.xz", "", "source/firefox-39.0.source.tar.xz"},
		// A name that holds "%" is written escaped: %25.
		{"/firefox/releases/39.0/win32/100%25.exe", "", "win32/100%.exe"},
		// "+" is not a space in a path.
		{"/firefox/releases/39.0/linux/c++.tar.bz2", "", "linux/c++.tar.bz2"},
	}
	for _, tt := range good {
		rel, err := storedRel(tt.stored, dir)
		if err != nil {
			t.Errorf("%q: %v", tt.stored, err)
			continue
		}
		file, err := fileFor(rel, tt.lang)
		if err != nil || file != tt.file {
			t.Errorf("%q in %q: %q (%v), want %q", tt.stored, tt.lang, file, err, tt.file)
			continue
		}
		// The URL sentry requests (from the manifest path) is the one the
		// redirector sends users to, as a server decodes it: the same
		// path once unescaped, never "%25" where the stored path had "%".
		mine := primer.FilePath(dir, file)
		theirs := strings.ReplaceAll(tt.stored, ":lang", tt.lang)
		if decoded(t, mine) != decoded(t, theirs) {
			t.Errorf("%q: sentry requests %s, the redirector sends users to %s", tt.stored, mine, theirs)
		}
		if strings.Contains(mine, "%2520") {
			t.Errorf("%q: escaped twice: %s", tt.stored, mine)
		}
	}
	bad := []struct {
		stored, lang, why string
	}{
		{"/firefox/releases/39.0/win32/:lang/Firefox%zzSetup.exe", "de", `invalid percent-escape "%zz"`},
		{"/firefox/releases/39.0/win32/Firefox%2", "", `invalid percent-escape "%2"`},
		{"/firefox/releases/39.0/win32/..%2F..%2F38.0/x.exe", "", "escaped slash"},
		{"/firefox/releases/39.0/%2e%2e/38.0/x.exe", "", `".." segment`},
		{"/firefox/releases/39.0/../38.0/x.exe", "", `".." segment`},
		{"/firefox/releases/39.0/./win32/x.exe", "", `"." segment`},
		{"/firefox/releases/39.0/win32//x.exe", "", "empty segment"},
		{"/firefox/releases/39.0/win32/x%00.exe", "", "control character"},
		{"/firefox/releases/39.0/win32/x%0A.exe", "", "control character"},
		{"/firefox/releases/38.0/win32/x.exe", "", "not under the release directory"},
		{"/firefox/releases/39.0", "", "not under the release directory"},
		{"firefox/releases/39.0/x.exe", "", "does not start with /"},
		// A language that would leave the directory.
		{"/firefox/releases/39.0/win32/:lang/x.exe", "..", `".." segment`},
		{"/firefox/releases/39.0/win32/:lang/x.exe", "../..", "holds no slash"},
		{"/firefox/releases/39.0/win32/:lang/x.exe", "a/b", "holds no slash"},
	}
	for _, tt := range bad {
		rel, err := storedRel(tt.stored, dir)
		if err == nil {
			_, err = fileFor(rel, tt.lang)
		}
		if err == nil || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("%q in %q: %v, want an error saying %s", tt.stored, tt.lang, err, tt.why)
		}
	}
}

// decoded is a URL path as a server reads it.
func decoded(t *testing.T, p string) string {
	t.Helper()
	f, err := fileFor(strings.TrimPrefix(p, "/"), "")
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return f
}

// TestManifestLangsOfEscapedPaths: for a product without languages, the
// languages of an escaped location path are those the manifest holds its
// unescaped form in.
func TestManifestLangsOfEscapedPaths(t *testing.T) {
	paths := map[string]bool{"win32/de/Firefox Setup 39.0.exe": true, "win32/fr/Firefox Setup 39.0.exe": true,
		"win32/fr/Firefox%20Setup%2039.0.exe": true, "win32/it/other.exe": true}
	if got := manifestLangs("win32/:lang/Firefox%20Setup%2039.0.exe", paths); !slices.Equal(got, []string{"de", "fr"}) {
		t.Errorf("escaped: %v, want [de fr]", got)
	}
	if got := manifestLangs("win32/:lang/Firefox Setup 39.0.exe", paths); !slices.Equal(got, []string{"de", "fr"}) {
		t.Errorf("raw: %v, want [de fr]", got)
	}
	// The literal name with "%20" in it is written "%2520".
	if got := manifestLangs("win32/:lang/Firefox%2520Setup%252039.0.exe", paths); !slices.Equal(got, []string{"fr"}) {
		t.Errorf("a name holding %%20: %v, want [fr]", got)
	}
}
