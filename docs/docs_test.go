// Package docs holds no code, only the tests that keep the reference true
// to the code: every package of the repository has its line in layout.md,
// every configuration key its row in configuration.md, every Prometheus
// series its row in metrics.md, and every relative link of README.md and
// docs/*.md leads to a file (and heading) that exists.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/mirrorsentry/sentry/sentry/config"
)

// root is the repository, seen from this directory.
const root = ".."

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	htmlComment = regexp.MustCompile(`(?s)<!--.*?-->`)
	// rowKey is the first cell of a table row, when it is `code`.
	rowKey = regexp.MustCompile("(?m)^\\| `([^`]+)` \\|")
)

// rows are the first cells of the table rows of md that are `code`,
// leaving out what HTML comments hold.
func rows(md string) []string {
	var out []string
	for _, m := range rowKey.FindAllStringSubmatch(htmlComment.ReplaceAllString(md, ""), -1) {
		out = append(out, m[1])
	}
	return out
}

// section is the part of md from the heading head to the next heading of
// the same level.
func section(t *testing.T, md, head string) string {
	t.Helper()
	i := strings.Index(md, head+"\n")
	if i < 0 {
		t.Fatalf("no heading %q", head)
	}
	rest := md[i+len(head):]
	level := head[:strings.IndexByte(head, ' ')+1]
	if j := strings.Index(rest, "\n"+level); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// TestLayoutListsEveryPackage: every directory holding Go files (a
// package, or tests only) has its row in layout.md, and every path a row
// names exists.
func TestLayoutListsEveryPackage(t *testing.T) {
	layout := read(t, "layout.md")
	listed := map[string]bool{}
	for _, r := range rows(layout) {
		listed[r] = true
	}
	var pkgs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") {
			dir, _ := filepath.Rel(root, filepath.Dir(path))
			pkgs = append(pkgs, filepath.ToSlash(dir))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		if seen[p] {
			continue
		}
		seen[p] = true
		if !listed[p] {
			t.Errorf("docs/layout.md lists no package %s: add a row | `%s` | what it does |", p, p)
		}
	}
	if len(seen) < 30 {
		t.Fatalf("found only %d packages: %v", len(seen), pkgs)
	}
	for r := range listed {
		matches, _ := filepath.Glob(filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(r, "/"))))
		if len(matches) == 0 {
			t.Errorf("docs/layout.md lists %s, which does not exist", r)
		}
	}
}

// configKeys are the YAML keys of config.Config, dotted.
func configKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			if f.Type.Kind() == reflect.Struct {
				walk(prefix+name+".", f.Type)
				continue
			}
			keys = append(keys, prefix+name)
		}
	}
	walk("", reflect.TypeOf(config.Config{}))
	if len(keys) < 20 {
		t.Fatalf("found only %d keys: %v", len(keys), keys)
	}
	return keys
}

// TestConfigurationListsEveryKey: every key of the configuration has its
// row in configuration.md, and every row there is a key.
func TestConfigurationListsEveryKey(t *testing.T) {
	every := section(t, read(t, "configuration.md"), "## Every key")
	listed := map[string]bool{}
	for _, r := range rows(every) {
		listed[r] = true
	}
	keys := map[string]bool{}
	for _, k := range configKeys(t) {
		keys[k] = true
		if !listed[k] {
			t.Errorf("docs/configuration.md has no row for %s", k)
		}
	}
	for r := range listed {
		if !keys[r] {
			t.Errorf("docs/configuration.md has a row for %s, which is not a configuration key", r)
		}
	}
}

// TestMetricsListsEverySeries: every series sentry/metrics exports has its
// row in metrics.md, and every row there is one of them.
func TestMetricsListsEverySeries(t *testing.T) {
	// Every file of the package but its tests: collectors may have files
	// of their own.
	files, err := filepath.Glob(filepath.Join(root, "sentry", "metrics", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	src := ""
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			src += read(t, f)
		}
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(sentry_[a-z_]+)"`).FindAllStringSubmatch(src, -1) {
		names[m[1]] = true
	}
	if len(names) < 15 {
		t.Fatalf("found only %d series in sentry/metrics: %v", len(names), names)
	}
	listed := map[string]bool{}
	for _, r := range rows(section(t, read(t, "metrics.md"), "## Every series")) {
		name, _, _ := strings.Cut(r, "{")
		listed[name] = true
	}
	for n := range names {
		if !listed[n] {
			t.Errorf("docs/metrics.md has no row for %s", n)
		}
	}
	for n := range listed {
		if !names[n] {
			t.Errorf("docs/metrics.md has a row for %s, which sentry/metrics does not export", n)
		}
	}
}

var (
	fence      = regexp.MustCompile("(?ms)^\\s*```.*?^\\s*```")
	inlineCode = regexp.MustCompile("`[^`\n]*`")
	mdLink     = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)\)`)
	heading    = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
)

// slug is the anchor GitHub gives a heading: lower case, punctuation
// dropped (but - and _), spaces as -.
func slug(h string) string {
	h = mdLink.ReplaceAllStringFunc(h, func(l string) string { return l[1:strings.Index(l, "](")] })
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors are the heading anchors of a markdown file, numbered as GitHub
// numbers repeated ones.
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	count := map[string]int{}
	for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(md, ""), -1) {
		s := slug(m[1])
		if n := count[s]; n > 0 {
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		count[s]++
	}
	return out
}

// TestLinksResolve: every relative link of README.md and docs/*.md leads
// to a file that exists and, with a #fragment, to one of its headings.
func TestLinksResolve(t *testing.T) {
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"))
	sort.Strings(files)
	for _, f := range files {
		md := read(t, f)
		text := inlineCode.ReplaceAllString(fence.ReplaceAllString(htmlComment.ReplaceAllString(md, ""), ""), "")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(link, "#")
			target := f
			if path != "" {
				target = filepath.Join(filepath.Dir(f), filepath.FromSlash(path))
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s: link %s: %v", f, link, err)
					continue
				}
			}
			if frag == "" {
				continue
			}
			if !strings.HasSuffix(target, ".md") {
				t.Errorf("%s: link %s: a fragment of a file that is not markdown", f, link)
				continue
			}
			if !anchors(read(t, target))[frag] {
				t.Errorf("%s: link %s: %s has no heading #%s", f, link, target, frag)
			}
		}
	}
}
