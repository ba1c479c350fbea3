package prime_test

import (
	"context"
	"errors"
	"net/http"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// requestLog records the paths of every request a server answers.
type requestLog struct {
	mu    sync.Mutex
	paths []string // escaped, as sent
}

func logRequests(s *localmirror.Server) *requestLog {
	l := &requestLog{}
	s.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
		l.mu.Lock()
		l.paths = append(l.paths, r.URL.EscapedPath())
		l.mu.Unlock()
		return false
	})
	return l
}

func (l *requestLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.paths...)
}

// TestHostileNamesStayInTheReleaseDirectory: release names, manifest paths
// and bouncer locations cannot make sentry request (or mark) anything
// outside the release directory, whether with "..", encoded slashes or
// encoded dots.
func TestHostileNamesStayInTheReleaseDirectory(t *testing.T) {
	t.Parallel()
	t.Run("release names", func(t *testing.T) {
		t.Parallel()
		w := world.New(t, nil)
		d := w.Deps
		w.Static(t, "good")
		before := w.Master.Stats().Requests
		for _, name := range []string{"..", "../1.5", "1.5/../..", "1.5%2F..", "%2e%2e", "..%2f..", "1.5\\..", "1.5\x00",
			"1.5/", "/1.5", ".hidden", "-rf", "1.5\n", strings.Repeat("1", 65)} {
			_, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: name})
			if !errors.Is(err, release.ErrBadName) {
				t.Errorf("release %q: %v, want ErrBadRelease", name, err)
			}
		}
		if got := w.Master.Stats().Requests - before; got != 0 {
			t.Errorf("the master was asked %d times for hostile release names", got)
		}
		var runs int
		if err := w.Pool().QueryRow(context.Background(), `SELECT count(*) FROM sentry_runs`).Scan(&runs); err != nil {
			t.Fatal(err)
		}
		if runs != 0 {
			t.Errorf("%d runs recorded for hostile release names", runs)
		}
	})

	t.Run("manifest paths", func(t *testing.T) {
		t.Parallel()
		// Names that look like traversal once decoded are files like any
		// other: sent escaped ('%' as %25), so no server decodes them
		// into a separator or a parent directory.
		hostile := []string{"win32%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/secret.exe", "..%5C..%5Cboot.ini",
			"win32/%2e%2e%2f%2e%2e%2fx.exe", `back\slash\name.exe`}
		w := world.New(t, nil)
		d := w.Deps
		for _, p := range hostile {
			w.Rel.Files[p] = localmirror.Content(p, 1000)
			w.Master.Put(w.Rel, p, w.Rel.Files[p])
		}
		w.Master.Put(w.Rel, "SHA256SUMS", w.Rel.Manifest())
		masterLog := logRequests(w.Master)
		mirror, _ := w.Static(t, "good")
		mirrorLog := logRequests(mirror)
		rep, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
		if err != nil {
			t.Fatal(err)
		}
		if s := world.MirrorSums(t, rep, "good"); s.State != "ok" || s.FilesOK != 4+len(hostile) {
			t.Errorf("the mirror holding every file: %+v", s)
		}
		for who, l := range map[string]*requestLog{"master": masterLog, "mirror": mirrorLog} {
			for _, p := range l.all() {
				if !strings.HasPrefix(p, "/pub"+w.Rel.Dir) || path.Clean(p) != p {
					t.Errorf("%s was asked for %s, outside the release directory", who, p)
				}
				low := strings.ToLower(p)
				for _, bad := range []string{"%2f", "%2e", `\`} {
					// Only their escaped forms (%252f, %255c…) may reach
					// a server.
					if strings.Contains(strings.ReplaceAll(low, "%25", ""), bad) {
						t.Errorf("%s was asked for %s: %q reaches it unescaped", who, p, bad)
					}
				}
			}
		}

	})

	t.Run("manifest traversal", func(t *testing.T) {
		t.Parallel()
		// ".." is refused between slashes and between backslashes (a
		// Windows mirror takes %5C for a separator): the manifest is
		// malformed, the run cannot be done, no mirror is asked.
		for _, p := range []string{"../etc/passwd", `..\..\windows.exe`, `win32\..\..\..\x.exe`, "win32/../../x.exe", `a/..\..\b`} {
			w := world.New(t, nil)
			d := w.Deps
			m, _ := w.Static(t, "good")
			w.Master.Put(w.Rel, "SHA256SUMS", []byte(strings.Repeat("ab", 32)+"  "+p+"\n"))
			_, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
			if !errors.Is(err, release.ErrManifest) || !strings.Contains(err.Error(), `".." segment`) {
				t.Errorf("manifest path %q: %v, want ErrManifest naming the \"..\" segment", p, err)
			}
			if n := m.Stats().Requests; n != 0 {
				t.Errorf("manifest path %q: the mirror was asked %d times", p, n)
			}
		}
	})

	t.Run("bouncer locations", func(t *testing.T) {
		t.Parallel()
		w := world.New(t, nil)
		d := w.Deps
		_, id := w.Static(t, "good")
		hostile := []string{
			"/firefox/releases/1.5/../1.4/win32/x.exe",
			"/firefox/releases/1.5/%2e%2e/1.4/x.exe",
			"/firefox/releases/1.5/win32/..%2f..%2f/x.exe",
			"/firefox/releases/1.5/win32/:lang/../../../../etc/passwd",
			"/firefox/releases/1.4/win32/Firefox Setup 1.4.exe",
		}
		ctx, pool := context.Background(), w.Pool()
		var ids []int
		for _, p := range hostile {
			ids = append(ids, factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: w.Product, OSID: w.WinOS, Path: p}).ID)
		}
		// A hostile language too: the :lang of the good locations.
		factory.ProductLang(ctx, t, pool, &factory.ProductLangOpts{ProductID: w.Product, Language: "../../.."})
		// And one sound location, without :lang, so that the prime has
		// something to do (with none, it fails before asking any mirror).
		factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: w.Product, OSID: w.WinOS,
			Path: "/firefox/releases/1.5/win32/de/Firefox Setup 1.5.exe"})
		masterLog := logRequests(w.Master)
		rep, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Outcome != store.OutcomeCompleted {
			t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
		}
		unresolved := map[int]bool{}
		for _, u := range rep.Unresolved {
			unresolved[u.LocationID] = true
		}
		marks := w.Marks(t)
		for i, lid := range ids {
			if !unresolved[lid] {
				t.Errorf("location %q not reported unresolved", hostile[i])
			}
			if _, ok := marks[lid]; ok {
				t.Errorf("location %q marked: %v", hostile[i], marks[lid])
			}
		}
		// The good locations, whose :lang now includes the hostile
		// language, are not marked from a file outside the release either.
		for _, lid := range []int{w.LocWin, w.LocLin} {
			if !unresolved[lid] {
				t.Errorf("location %d with a hostile language not reported unresolved", lid)
			}
			if _, ok := marks[lid][id]; ok {
				t.Errorf("location %d with a hostile language marked", lid)
			}
		}
		for _, p := range masterLog.all() {
			if !strings.HasPrefix(p, "/pub"+w.Rel.Dir) || path.Clean(p) != p {
				t.Errorf("master asked for %s", p)
			}
		}
	})
}
