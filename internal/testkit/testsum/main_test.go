package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"m/a","Test":"TestOK"}`,
		`{"Action":"output","Package":"m/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}`,
		`{"Action":"pass","Package":"m/a","Test":"TestOK"}`,
		`{"Action":"run","Package":"m/a","Test":"TestChromium"}`,
		`{"Action":"output","Package":"m/a","Test":"TestChromium","Output":"    web_test.go:9: chromium is not installed\n"}`,
		`{"Action":"output","Package":"m/a","Test":"TestChromium","Output":"--- SKIP: TestChromium (0.00s)\n"}`,
		`{"Action":"skip","Package":"m/a","Test":"TestChromium"}`,
		`{"Action":"run","Package":"m/a","Test":"TestBad"}`,
		`{"Action":"output","Package":"m/a","Test":"TestBad","Output":"    a_test.go:3: want 1, got 2\n"}`,
		`{"Action":"fail","Package":"m/a","Test":"TestBad"}`,
		`{"Action":"output","Package":"m/a","Output":"FAIL\tm/a\t0.1s\n"}`,
		`{"Action":"fail","Package":"m/a"}`,
		`{"Action":"output","Package":"m/b","Output":"ok  \tm/b\t0.2s\n"}`,
		`{"Action":"pass","Package":"m/b"}`,
	}, "\n")
	var out bytes.Buffer
	if code := run(strings.NewReader(in), &out); code != 1 {
		t.Errorf("exit %d with a failed test, want 1", code)
	}
	got := out.String()
	for _, want := range []string{"want 1, got 2", "FAIL\tm/a\t0.1s", "ok  \tm/b", "skipped tests (1):",
		"m/a TestChromium: web_test.go:9: chromium is not installed", "\n1 passed, 1 failed, 1 skipped\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "=== RUN") {
		t.Errorf("summary shows a passing test's output:\n%s", got)
	}
	out.Reset()
	if code := run(strings.NewReader(`{"Action":"pass","Package":"m/b","Test":"TestOK"}`), &out); code != 0 ||
		!strings.HasSuffix(out.String(), "1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("all passed: exit %d\n%s", code, out.String())
	}
}
