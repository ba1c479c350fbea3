package prime_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

func TestPrimeReportsUnresolvedLocations(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	_, id := w.Static(t, "good")
	// Two more locations of the product's win32 build: a file the release
	// lacks, and one of another release.
	loc := func(path string) int {
		return factory.Location(context.Background(), t, w.Pool(), &factory.LocationOpts{ProductID: w.Product, OSID: w.WinOS, Path: path}).ID
	}
	msi, old := loc("/firefox/releases/1.5/win32/:lang/Firefox Setup 1.5.msi"), loc("/firefox/releases/1.4/win32/x.exe")
	rep := w.Prime(t)
	if rep.Locations != 2 || len(rep.Unresolved) != 2 {
		t.Fatalf("locations %d, unresolved %+v", rep.Locations, rep.Unresolved)
	}
	reasons := map[int]string{}
	for _, u := range rep.Unresolved {
		reasons[u.LocationID] = u.Reason
	}
	if !strings.Contains(reasons[msi], "not in the manifest: win32/de/Firefox Setup 1.5.msi") {
		t.Errorf("msi location: %q", reasons[msi])
	}
	if !strings.Contains(reasons[old], "not under the release directory") {
		t.Errorf("1.4 location: %q", reasons[old])
	}
	marks := w.Marks(t)
	if _, ok := marks[msi][id]; ok {
		t.Errorf("unresolved location marked")
	}
	if marks[w.LocWin][id] != world.Good {
		t.Errorf("resolved location not marked good")
	}
	if len(rep.MissingProducts) != 1 || rep.MissingProducts[0] != "Firefox-1.5-SSL" {
		t.Errorf("missing products %v", rep.MissingProducts)
	}
}

// TestProductWithoutLanguagesChecksEveryManifestLanguage: for a product
// with no mirror_product_langs rows, ":lang" stands for every language the
// manifest holds the path in — not only releases.default_langs — so a
// mirror with a corrupt file in any of them is not offered for it.
func TestProductWithoutLanguagesChecksEveryManifestLanguage(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	if _, err := w.Pool().Exec(context.Background(), `DELETE FROM mirror_product_langs`); err != nil {
		t.Fatal(err)
	}
	fr := "win32/fr/Firefox Setup 1.5.exe"
	w.Publish(fr, localmirror.Content(fr, 70_000))
	_, goodID := w.Static(t, "good")
	bad, badID := w.Static(t, "bad-fr")
	bad.Put(w.Rel, fr, localmirror.Flip(w.Rel.Files[fr]))
	rep := w.Prime(t)
	m := w.Marks(t)
	if m[w.LocWin][goodID] != world.Good || m[w.LocWin][badID] != world.Off {
		t.Errorf("win32 location: good %+v, bad-fr %+v; want good offered, bad-fr off", m[w.LocWin][goodID], m[w.LocWin][badID])
	}
	langs := map[string]bool{}
	for _, c := range w.Seen.All() {
		if c.RunID == rep.RunID && c.MirrorID == goodID && strings.HasPrefix(c.Path, "win32/") {
			langs[strings.Split(c.Path, "/")[1]] = true
		}
	}
	if len(langs) != 3 || !langs["fr"] || !langs["de"] || !langs["en-US"] {
		t.Errorf("languages checked: %v; want every one the manifest holds (de, en-US, fr)", langs)
	}
}
