package hook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/hook"
	"github.com/mirrorsentry/sentry/sentry/release"
)

// FuzzReleaseHook sends arbitrary header and body bytes to a release hook
// with a known secret. The handler must never panic, must always answer one
// JSON object, and must call the Starter only for a request whose signature
// is the valid one for its timestamp and body (checked here independently of
// Sign), whose timestamp is inside the window, and whose body is exactly
// {"release": R} with a valid R, the release the Starter got.
//
// selfSign makes the harness sign the fuzzed timestamp and body itself, so
// that the body parser behind the authentication is fuzzed too; the fuzzed
// signature is then ignored.
func FuzzReleaseHook(f *testing.F) {
	now := strconv.FormatInt(t0.Unix(), 10)
	valid := hook.Sign([]byte(testSecret), now, []byte(goodBody))
	seeds := []struct {
		ts, sig  string
		body     string
		selfSign bool
	}{
		{now, valid, goodBody, false},
		{now, valid, goodBody, true},
		{now, strings.ToUpper(valid), goodBody, false},
		{now, valid, `{"release":"1.6"}`, false},
		{now, "", goodBody, false},
		{"", valid, goodBody, false},
		{now, "sha256=", goodBody, false},
		{now, "sha256=" + strings.Repeat("0", 64), goodBody, false},
		{"0" + now, valid, goodBody, false},
		{"-1", valid, goodBody, true},
		{"99999999999999999999", valid, goodBody, true},
		{strconv.FormatInt(t0.Unix()-301, 10), "", goodBody, true},
		{now, "", `{"release":"../x"}`, true},
		{now, "", `{"release":"1.5","release":"1.6"}`, true},
		{now, "", `{"Release":"1.5"}`, true},
		{now, "", `{"release":null}`, true},
		{now, "", `{"release":"1.5"}{}`, true},
		{now, "", `{"release":"1.5\u0000"}`, true},
		{now, "", `{"release":"\ud800"}`, true},
		{now, "", "{\"release\":\"\xff\"}", true},
		{now, "", `[{"release":"1.5"}]`, true},
		{now, "", strings.Repeat("[", 2000), true},
		{now, "", " " + goodBody + " ", true},
		{now, "", "", true},
		{now, "x\r\ny", "", false},
	}
	for _, s := range seeds {
		f.Add(s.ts, s.sig, []byte(s.body), s.selfSign)
	}

	f.Fuzz(func(t *testing.T, ts, sig string, body []byte, selfSign bool) {
		if selfSign {
			sig = hook.Sign([]byte(testSecret), ts, body)
		}
		var started []string
		h, err := hook.NewReleaseHandler(hook.Options{
			Secret: []byte(testSecret),
			Start: func(_ context.Context, release string) (int64, error) {
				started = append(started, release)
				return 1, nil
			},
			Validate: release.ValidateName,
			Now:      func() time.Time { return t0 },
			Logger:   slog.New(slog.DiscardHandler),
			MaxBody:  4096,
		})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, "/hooks/release", bytes.NewReader(body))
		r.Header[hook.HeaderTimestamp] = []string{ts}
		r.Header[hook.HeaderSignature] = []string{sig}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)

		var answer map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Fatalf("status %d, answer %q is not a JSON object: %v", w.Code, w.Body, err)
		}
		if strings.Contains(w.Body.String(), testSecret) {
			t.Fatalf("answer %q holds the secret", w.Body)
		}
		if len(started) == 0 {
			if w.Code == http.StatusAccepted {
				t.Fatalf("202 without a Starter call: %q", w.Body)
			}
			return
		}

		// The Starter was called: everything must check out.
		if len(started) != 1 || w.Code != http.StatusAccepted {
			t.Fatalf("Starter called %d times, status %d", len(started), w.Code)
		}
		hexSig, ok := strings.CutPrefix(sig, "sha256=")
		got, err := hex.DecodeString(hexSig)
		m := hmac.New(sha256.New, []byte(testSecret))
		m.Write([]byte(ts + "."))
		m.Write(body)
		if !ok || err != nil || !hmac.Equal(got, m.Sum(nil)) {
			t.Fatalf("Starter called for a bad signature %q (ts %q, body %q)", sig, ts, body)
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || strings.HasPrefix(ts, "+") || sec < t0.Unix()-300 || sec > t0.Unix()+300 {
			t.Fatalf("Starter called for timestamp %q outside the window", ts)
		}
		var parsed map[string]string
		if err := json.Unmarshal(body, &parsed); err != nil || len(parsed) != 1 || parsed["release"] != started[0] {
			t.Fatalf("Starter called with %q for body %q", started[0], body)
		}
		if err := release.ValidateName(started[0]); err != nil {
			t.Fatalf("Starter called with an invalid release: %v", err)
		}
	})
}
