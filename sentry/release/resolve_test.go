package release

import (
	"slices"
	"strings"
	"testing"
)

func TestManifestLangs(t *testing.T) {
	paths := map[string]bool{}
	for _, p := range []string{
		"win32/de/Firefox Setup 1.5.exe", "win32/en-US/Firefox Setup 1.5.exe", "win32/ja/Firefox Setup 1.5.exe",
		"win32/de/extra/Firefox Setup 1.5.exe", // deeper: not a language of the location
		"linux/de/firefox-1.5.de.tar.bz2", "linux/fr/firefox-1.5.fr.tar.bz2", "linux/it/firefox-1.5.es.tar.bz2",
		"mac/Firefox 1.5.dmg",
	} {
		paths[p] = true
	}
	tests := []struct {
		rel  string
		want []string
	}{
		{"win32/:lang/Firefox Setup 1.5.exe", []string{"de", "en-US", "ja"}},
		{"linux/:lang/firefox-1.5.:lang.tar.bz2", []string{"de", "fr"}}, // it/…es is not one language
		{"mac/:lang/Firefox 1.5.dmg", nil},
		{"win32/:lang", nil},
		{"win32/:lang:lang/x", nil},
	}
	for _, tt := range tests {
		if got := manifestLangs(tt.rel, paths); !slices.Equal(got, tt.want) {
			t.Errorf("manifestLangs(%q) = %v, want %v", tt.rel, got, tt.want)
		}
		if strings.Count(tt.rel, ":lang") == 0 {
			t.Fatal("bad case")
		}
	}
}
