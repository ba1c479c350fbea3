package primer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
)

// FileURL returns the URL of one release file on a mirror (or on the master):
// baseURL, then releaseDir and path joined by exactly one '/', every path
// segment escaped with url.PathEscape (a space becomes %20, '#' %23, '?' %3F,
// '%' %25, non-ASCII is percent-encoded as UTF-8).
//
// releaseDir is the release directory with {release} already substituted
// ("/firefox/releases/1.5/"); a missing leading or trailing slash is supplied.
// path is relative to it ("win32/de/Firefox Setup 1.5.exe"); a leading slash
// is dropped. A trailing slash on baseURL is dropped too.
//
// FileURL refuses nothing: paths are validated upstream (the manifest
// reader). It splits on '/' before escaping, so no escaped segment can ever
// contain a '/' (nor a '?' or '#' that would cut the path short); but it does
// not remove "." or ".." segments, nor empty segments inside path.
func FileURL(baseURL, releaseDir, path string) string {
	return strings.TrimSuffix(baseURL, "/") + FilePath(releaseDir, path)
}

// FilePath is the part of FileURL after the base URL: "/" and the release
// directory and path, each segment escaped. A caller that asks for the
// same file on many mirrors computes it once.
func FilePath(releaseDir, path string) string {
	dir := strings.Trim(releaseDir, "/")
	rel := strings.TrimPrefix(path, "/")
	full := rel
	if dir != "" {
		full = dir + "/" + rel
	}
	segs := strings.Split(full, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/" + strings.Join(segs, "/")
}

// SignaturePrefix starts every trigger signature (docs/CONTRACTS.md, section
// 8 (The trigger)).
const SignaturePrefix = "sha256="

// Sign returns the value of the X-Sentry-Signature header for a trigger body:
// "sha256=" followed by the lower-case hex HMAC-SHA256 of body under secret.
// The mirror recomputes it over the raw body it received and should compare
// with hmac.Equal (constant time).
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body) // a hash.Hash never returns an error
	return SignaturePrefix + hex.EncodeToString(m.Sum(nil))
}

// triggerBody is the JSON of a trigger (docs/CONTRACTS.md, section 8 (The
// trigger)).
type triggerBody struct {
	Release string   `json:"release"`
	Files   []string `json:"files"`
}

// TriggerBody returns the JSON body of a trigger POST:
// {"release": R, "files": [paths...]}, the paths relative to the release
// directory, in the order given. "files" is [] (never null) when files is
// empty. Invalid UTF-8 in a name is replaced by U+FFFD by encoding/json.
func TriggerBody(release string, files []File) []byte {
	tb := triggerBody{Release: release, Files: make([]string, 0, len(files))}
	for _, f := range files {
		tb.Files = append(tb.Files, f.Path)
	}
	b, err := json.Marshal(tb)
	if err != nil {
		// Marshalling strings cannot fail; keep a valid body regardless.
		return []byte(`{"release":"","files":[]}`)
	}
	return b
}

// Unusable says why m's settings do not let it be primed, "" when they
// do: a trigger mirror needs a trigger URL that is an absolute http(s) URL
// and a configured trigger secret (secret), a mirror's base URL must be an
// absolute http(s) URL. A mirror with unusable settings is not contacted
// at all (it would only be polled until the deadline). The reasons name
// the setting to fix, never its value (a URL may carry a token).
func (m Mirror) Unusable(secret bool) string {
	if !isHTTPURL(m.BaseURL) {
		return "mirror_mirrors.baseurl is not an absolute http:// or https:// URL: not primed"
	}
	if m.Mode != ModeTrigger {
		return ""
	}
	switch err := CheckTriggerURL(m.Mode, m.TriggerURL); {
	case errors.Is(err, ErrNoTriggerURL):
		return "trigger mirror without a trigger URL (sentry_mirror_settings.trigger_url is empty): not primed"
	case err != nil:
		return "sentry_mirror_settings.trigger_url is not an absolute http:// or https:// URL: not primed"
	case !secret:
		return "trigger mirror, but no trigger secret is configured (trigger.secret or SENTRY_TRIGGER_SECRET): not primed"
	}
	return ""
}

// Errors of CheckTriggerURL and Purge.Check.
var (
	// ErrNoTriggerURL: a trigger mirror without a trigger URL.
	ErrNoTriggerURL = errors.New("a trigger mirror needs a trigger URL")
	// ErrNotHTTPURL: a URL that is not an absolute http:// or https://
	// URL.
	ErrNotHTTPURL = errors.New("not an absolute http:// or https:// URL")
)

// CheckTriggerURL is the rule of a mirror's trigger URL
// (sentry_mirror_settings.trigger_url), as a prime applies it (Unusable)
// and `sentry mirror set` before writing one: a trigger mirror needs one
// (ErrNoTriggerURL), and one that is set is an absolute http(s) URL
// (ErrNotHTTPURL). Its errors never hold the URL (it may carry a token).
func CheckTriggerURL(mode Mode, triggerURL string) error {
	switch {
	case strings.TrimSpace(triggerURL) == "":
		if mode == ModeTrigger {
			return ErrNoTriggerURL
		}
		return nil
	case !isHTTPURL(triggerURL):
		return ErrNotHTTPURL
	}
	return nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
