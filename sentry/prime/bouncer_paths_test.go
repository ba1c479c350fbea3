package prime_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Mozilla's bouncer data as it is (issue 24): paths stored
// percent-escaped, product names in another case. The end-to-end test of
// the whole (real nginx, the redirector's query followed to the bytes) is
// redirector_nginx_test.go.

// TestEscapedLocationPathsAreTheSameFile: a location stored percent-escaped
// as Mozilla's data writes it (/…/Firefox%20Setup%201.5.exe) is the
// manifest's file: it is
// checked (by the URL the redirector builds, escaped once), marked good on
// the mirror that holds it and off on the one that lacks it, by the prime
// and by sweeps. Locations whose escapes are invalid or that unescape out
// of the release directory are unresolved — not withdrawn — and nothing is
// written for them: the rows an admin left on them stay as they were.
func TestEscapedLocationPathsAreTheSameFile(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	ctx, pool := context.Background(), w.Pool()
	good, goodID := w.Static(t, "good")
	lacks, lacksID := w.Static(t, "lacks-de")
	lacks.Remove(w.Rel, "win32/de/Firefox Setup 1.5.exe")
	goodLog, lacksLog := logRequests(good), logRequests(lacks)

	ssl := factory.Product(ctx, t, pool, &factory.ProductOpts{Name: "Firefox-1.5-SSL", Langs: []string{"en-US", "de"}})
	loc := func(path string) int {
		return factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: ssl.ID, OSID: w.WinOS, Path: path}).ID
	}
	escaped := loc("/firefox/releases/1.5/win32/:lang/Firefox%20Setup%201.5.exe")
	invalid := loc("/firefox/releases/1.5/win32/:lang/Firefox%zzSetup%201.5.exe")
	outside := loc("/firefox/releases/1.5/win32/..%2F..%2F1.4/Firefox%20Setup%201.4.exe")
	for _, l := range []int{invalid, outside} {
		factory.LocationMirror(ctx, t, pool, &factory.LocationMirrorOpts{LocationID: l, MirrorID: goodID,
			Active: factory.Ptr(true), Healthy: factory.Ptr(true)})
	}

	rep := w.Prime(t)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("prime: %s (%s)", rep.Outcome, rep.Reason)
	}
	unresolved := map[int]string{}
	for _, u := range rep.Unresolved {
		unresolved[u.LocationID] = u.Reason
		if u.Withdrawn {
			t.Errorf("location %d %s withdrawn (%s): a path that stands for no file is unresolved, never withdrawn", u.LocationID, u.Path, u.Reason)
		}
	}
	if why, ok := unresolved[escaped]; ok {
		t.Fatalf("the escaped location is unresolved: %s", why)
	}
	if !strings.Contains(unresolved[invalid], `invalid percent-escape "%zz"`) {
		t.Errorf("invalid escape: %q, want it named", unresolved[invalid])
	}
	if !strings.Contains(unresolved[outside], "escaped slash") {
		t.Errorf("escaped slash: %q, want it named", unresolved[outside])
	}
	check := func(when string) {
		t.Helper()
		m := w.Marks(t)
		if m[escaped][goodID] != world.Good || m[escaped][lacksID] != world.Off {
			t.Errorf("%s: escaped location good %+v, lacks-de %+v; want good offered, lacks-de off", when, m[escaped][goodID], m[escaped][lacksID])
		}
		if m[escaped][goodID] != m[w.LocWin][goodID] || m[escaped][lacksID] != m[w.LocWin][lacksID] {
			t.Errorf("%s: the escaped and the raw location of one file are marked apart: %v, %v", when, m[escaped], m[w.LocWin])
		}
		for _, l := range []int{invalid, outside} {
			if len(m[l]) != 1 || m[l][goodID] != world.Good || m[l][lacksID] != (world.Mark{}) {
				t.Errorf("%s: unresolved location %d written: %v; want the admin's row left alone, no other", when, l, m[l])
			}
		}
	}
	check("after the prime")
	for who, l := range map[string]*requestLog{"good": goodLog, "lacks-de": lacksLog} {
		asked := false
		for _, p := range l.all() {
			asked = asked || p == "/pub/firefox/releases/1.5/win32/de/Firefox%20Setup%201.5.exe"
			if strings.Contains(p, "%25") || strings.Contains(p, "zz") || strings.Contains(p, "1.4") {
				t.Errorf("%s was asked for %s", who, p)
			}
		}
		if !asked {
			t.Errorf("%s was never asked for the file by the URL the redirector builds", who)
		}
	}
	w.Sweep(t, false)
	w.Sweep(t, true)
	check("after sweeps")
}

// TestProductNamesMatchCaseInsensitively: the redirector matches a
// request's product name case-insensitively, so the bouncer's
// "firefox-1.5-ssl" is the product users asking for "Firefox-1.5-SSL" get:
// it is the release's product of pattern Firefox-{release}-SSL, its
// locations checked and marked.
func TestProductNamesMatchCaseInsensitively(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	ctx, pool := context.Background(), w.Pool()
	_, goodID := w.Static(t, "good")
	ssl := factory.Product(ctx, t, pool, &factory.ProductOpts{Name: "firefox-1.5-ssl", SSLOnly: factory.Ptr(true)})
	loc := factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: ssl.ID, OSID: w.WinOS,
		Path: "/firefox/releases/1.5/win32/:lang/Firefox%20Setup%201.5.exe"}).ID
	rep := w.Prime(t)
	if len(rep.MissingProducts) != 0 {
		t.Errorf("missing products %v: firefox-1.5-ssl is the product of pattern Firefox-{release}-SSL", rep.MissingProducts)
	}
	if rep.Locations != 3 {
		t.Errorf("%d locations mapped, want 3 (Firefox-1.5's two and firefox-1.5-ssl's)", rep.Locations)
	}
	if m := w.Marks(t); m[loc][goodID] != world.Good {
		t.Errorf("firefox-1.5-ssl's location on the good mirror: %+v, want good", m[loc][goodID])
	}
}
