package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// TestUptakeCountsOnlyWhatTheRedirectorOffers: a release's uptake
// (report --release, and the recent uptake the metrics read) counts only
// the mirrors the redirector can offer for its products, each with the
// scheme it needs — not the mirror without a region, not the one whose
// base URL is of neither scheme, whatever sentry verified there — and
// says why of each of those (table and JSON); the locations whose users of
// a scheme reach no good copy are listed by scheme; the mirror report
// flags the mirrors never offered and the one sentry never verified, and
// shows an admin's language exception as what it is: ignored.
func TestUptakeCountsOnlyWhatTheRedirectorOffers(t *testing.T) {
	t.Parallel()
	w := world.NewOfferWorld(t)
	ctx := context.Background()
	rep := report.New(w.Pool(), nil)
	rel, err := rep.Release(ctx, "1.5")
	if err != nil {
		t.Fatal(err)
	}
	// http-full (plain product) and https-full (ssl_only product) are
	// offered, and dead (http://, a region): 40 + 30 + 10.
	if rel.OfferableMirrors != 3 || rel.RatingTotal != 80 || rel.ActiveMirrors != 5 {
		t.Errorf("offerable mirrors %d (rating %d) of %d active; want 3 (80) of 5", rel.OfferableMirrors, rel.RatingTotal, rel.ActiveMirrors)
	}
	// Only http-full holds the whole release among them; https-noregion
	// and upper hold it too, but are never offered.
	if rel.Complete != 1 || rel.Weighted == nil || math.Abs(*rel.Weighted-40.0/80) > 1e-9 {
		t.Errorf("complete %d, weighted %v; want 1, 0.5", rel.Complete, rel.Weighted)
	}
	if len(rel.Products) != 2 || !rel.Products[1].SSLOnly || rel.Products[1].Name != "Firefox-1.5-SSL" {
		t.Errorf("products %+v", rel.Products)
	}
	by := map[string]report.MirrorUptake{}
	for _, m := range rel.Mirrors {
		by[m.Name] = m
	}
	for name, want := range map[string]struct {
		counted    bool
		notOffered string
	}{
		"http-full":      {true, ""},
		"https-full":     {true, ""},
		"dead":           {true, ""},
		"https-noregion": {false, "no region (geoip_mirror_region_map)"},
		"upper":          {false, "wrong scheme: its base URL starts with neither http:// nor https://"},
	} {
		m := by[name]
		if m.Counted != want.counted || !strings.HasPrefix(m.NotOffered, want.notOffered) || (want.notOffered == "") != (m.NotOffered == "") {
			t.Errorf("%s: counted %v, not offered %q; want %v, %q", name, m.Counted, m.NotOffered, want.counted, want.notOffered)
		}
	}
	if by["https-noregion"].Holding != rel.Files || by["upper"].Holding != rel.Files {
		t.Errorf("the mirrors never offered hold %d and %d files verified, want all %d (verified, not offered)",
			by["https-noregion"].Holding, by["upper"].Holding, rel.Files)
	}
	for _, f := range rel.FileList {
		want := 2 // http-full and https-full
		if f.Path == world.OfferLacking {
			want = 1
		}
		if f.Mirrors != want {
			t.Errorf("%s on %d offerable mirrors, want %d", f.Path, f.Mirrors, want)
		}
	}
	// No mirror offered to https users holds the linux locations good:
	// https-full lacks a file, https-noregion has no region.
	got := map[string]bool{}
	for _, l := range rel.WithoutGoodCopy {
		got[l.Product+" "+l.Scheme] = l.Path == world.PathLinux
	}
	if len(got) != 2 || !got["Firefox-1.5 https"] || !got["Firefox-1.5-SSL https"] {
		t.Errorf("locations without a good copy: %+v; want the linux location of both products, for https users", rel.WithoutGoodCopy)
	}

	var table, js bytes.Buffer
	if err := report.WriteReleaseTable(&table, rel, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 of 3 mirrors the redirector can offer", "not offered: no region",
		"not offered: wrong scheme", "2 locations without a good copy", "https users, Firefox-1.5-SSL:"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("release table lacks %q:\n%s", want, table.String())
		}
	}
	if err := report.WriteJSON(&js, rel); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Offerable int `json:"offerable_mirrors"`
		Mirrors   []struct {
			Name       string `json:"name"`
			NotOffered string `json:"not_offered"`
			Counted    bool   `json:"counted"`
		} `json:"mirrors"`
		Without []struct {
			Path, Scheme string
		} `json:"locations_without_good_copy"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Offerable != 3 || len(back.Without) != 2 {
		t.Errorf("release JSON: %v %s", err, js.String())
	}

	// The recent uptake the metrics read says the same.
	ups, err := rep.RecentUptake(ctx, time.Hour, 5)
	if err != nil || len(ups) != 1 || ups[0].Weighted == nil || math.Abs(*ups[0].Weighted-0.5) > 1e-9 {
		t.Errorf("recent uptake %+v (%v), want 1.5 at 0.5", ups, err)
	}
	cov, err := rep.Coverages(ctx, 20)
	if err != nil || len(cov) != 2 || cov[0].Scheme != "http" || cov[0].Without != 0 || cov[1].Scheme != "https" || cov[1].Without != 2 {
		t.Errorf("coverages %+v (%v); want 1.5: http 0, https 2 without a good copy", cov, err)
	}

	// The mirror report.
	factory.LangException(ctx, t, w.Pool(), &factory.LangExceptionOpts{LocationID: w.LocWin, MirrorID: w.IDs["http-full"], Language: "fr"})
	all, err := rep.Mirrors(ctx, report.Window{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]report.MirrorRow{}
	for _, m := range all.Mirrors {
		rows[m.Name] = m
	}
	if m := rows["https-noregion"]; m.NotOfferedCode() != "no_region" || !strings.Contains(m.OfferNote(), "never offered by the redirector: no region") {
		t.Errorf("https-noregion: %q (%s)", m.NotOfferedCode(), m.OfferNote())
	}
	if m := rows["upper"]; m.NotOfferedCode() != "wrong_scheme" {
		t.Errorf("upper: %q (%s)", m.NotOfferedCode(), m.OfferNote())
	}
	if m := rows["dead"]; !m.NeverVerified || !strings.Contains(m.OfferNote(), "never verified by sentry") || m.NotOffered != "" {
		t.Errorf("dead: never verified %v, %q", m.NeverVerified, m.OfferNote())
	}
	if m := rows["http-full"]; m.NeverVerified || m.OfferNote() != "" {
		t.Errorf("http-full: %q", m.OfferNote())
	}
	table.Reset()
	if err := report.WriteMirrorsTable(&table, all, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "offer: never verified by sentry") || !strings.Contains(table.String(), "offer: never offered by the redirector: no region") {
		t.Errorf("mirrors table:\n%s", table.String())
	}
	d, err := rep.Mirror(ctx, "http-full", all.Window)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.LangExceptions) != 1 || d.LangExceptions[0].Language != "fr" {
		t.Fatalf("language exceptions %+v", d.LangExceptions)
	}
	table.Reset()
	if err := report.WriteMirrorTable(&table, d, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "exception for fr on "+world.PathWin+" (ignored by the redirector") {
		t.Errorf("mirror table:\n%s", table.String())
	}
}
