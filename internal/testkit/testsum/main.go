// Command testsum reads `go test -json` on its standard input and prints
// what a person wants of `make test`: each package's result line as `go
// test` prints it, the whole output of every test that failed (and of a
// package that failed to build or timed out), and at the end every test
// that was skipped, with the reason it gave — a test that needs Chromium,
// nginx or promtool skips outside CI when they are missing, and that must
// not go unseen. The last line counts the tests:
//
//	412 passed, 0 failed, 3 skipped
//
// It exits 1 when a test or a package failed, so that `make test` fails
// even when its pipe loses go test's own status.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Output     string
}

type key struct{ pkg, test string }

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	var (
		outputs        = map[key][]string{} // tests' output, until their verdict
		builds         = map[string][]string{}
		skipped        []string
		passed, failed int
		pkgFailed      bool
	)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Fprintln(out, string(line)) // not JSON: go's own message
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "build-output":
			builds[e.ImportPath] = append(builds[e.ImportPath], e.Output)
		case "build-fail":
			fmt.Fprint(out, strings.Join(builds[e.ImportPath], ""))
			pkgFailed = true
		case "output":
			if e.Test == "" {
				// A package's own lines: its result line, and what a
				// panic or a timeout printed.
				if isResult(e.Output) {
					fmt.Fprint(out, e.Output)
				} else {
					outputs[k] = append(outputs[k], e.Output)
				}
				continue
			}
			outputs[k] = append(outputs[k], e.Output)
		case "pass":
			if e.Test != "" {
				passed++
			}
			delete(outputs, k)
		case "skip":
			if e.Test != "" {
				skipped = append(skipped, fmt.Sprintf("%s %s: %s", short(e.Package), e.Test, reason(outputs[k])))
			}
			delete(outputs, k)
		case "fail":
			if e.Test != "" {
				failed++
				fmt.Fprint(out, strings.Join(outputs[k], ""))
				delete(outputs, k)
				continue
			}
			pkgFailed = true
			// The package failed: what its unfinished tests and itself
			// printed (a timeout's stacks, a panic).
			var rest []key
			for o := range outputs {
				if o.pkg == e.Package {
					rest = append(rest, o)
				}
			}
			sort.Slice(rest, func(i, j int) bool { return rest[i].test < rest[j].test })
			for _, o := range rest {
				fmt.Fprint(out, strings.Join(outputs[o], ""))
				delete(outputs, o)
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(out, "testsum: %v\n", err)
		return 1
	}
	if len(skipped) > 0 {
		sort.Strings(skipped)
		fmt.Fprintf(out, "\nskipped tests (%d):\n", len(skipped))
		for _, s := range skipped {
			fmt.Fprintf(out, "  %s\n", s)
		}
	}
	fmt.Fprintf(out, "\n%d passed, %d failed, %d skipped\n", passed, failed, len(skipped))
	if failed > 0 || pkgFailed {
		return 1
	}
	return 0
}

// isResult tells a package's result line: "ok  \tpkg\t1.2s", "FAIL\tpkg",
// "?   \tpkg\t[no test files]".
func isResult(s string) bool {
	return strings.HasPrefix(s, "ok  \t") || strings.HasPrefix(s, "FAIL\t") || strings.HasPrefix(s, "?   \t")
}

// reason is what a skipped test said: its output less the === and ---
// lines.
func reason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " ")
}

// short drops the module path from a package path.
func short(pkg string) string {
	return strings.TrimPrefix(pkg, "github.com/mirrorsentry/sentry/")
}
