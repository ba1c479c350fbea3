package primer

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/mirrorsentry/sentry/checks"
)

// Purge is how a pull-through cache lets sentry drop what it holds of a
// file (sentry_mirror_settings.purge_method and purge_url): used when the
// cache serves the file wrong after its manifest changed it (a respin), so
// that the next request fetches the new version from upstream.
type Purge struct {
	// Method is the request method: PURGE for Squid and Varnish, or what
	// the cache's purge location answers to. "" means the mirror cannot
	// be purged.
	Method string
	// URL is a template: {url} stands for the file's URL on the mirror,
	// {path} for its path under the mirror's base URL (escaped, with its
	// leading '/'): "{url}" for Squid and Varnish,
	// "https://mirror.example/purge{path}" for a purge location. It is
	// never logged nor put in a Detail (it may carry a token).
	URL string
}

// Set reports whether the mirror can be purged.
func (p Purge) Set() bool { return p.Method != "" }

// Target is the purge URL of the file at fileURL on a mirror whose base
// URL is baseURL, or an error naming the setting (never its value) when
// the template does not give an absolute http(s) URL.
func (p Purge) Target(baseURL, fileURL string) (string, error) {
	path := strings.TrimPrefix(fileURL, strings.TrimSuffix(baseURL, "/"))
	u := strings.NewReplacer("{url}", fileURL, "{path}", path).Replace(p.URL)
	if !isHTTPURL(u) {
		return "", &PurgeError{Setting: "purge_url", Why: "does not give an absolute http:// or https:// URL"}
	}
	return u, nil
}

// PurgeError is a purge setting that cannot be used: the column of
// sentry_mirror_settings, and why (never the URL: it may carry a token).
type PurgeError struct {
	Setting, Why string
}

func (e *PurgeError) Error() string { return "sentry_mirror_settings." + e.Setting + " " + e.Why }

// purgeMethod is what a purge method looks like: an HTTP method in
// capitals, as the settings table's constraint says.
var purgeMethod = regexp.MustCompile(`^[A-Z]{3,16}$`)

// Check is the rule of a mirror's purge settings
// (sentry_mirror_settings.purge_method and purge_url), as `sentry mirror
// set` applies it before writing them: both or neither, the method an
// HTTP method in capitals (PURGE), and the URL a template giving an
// absolute http(s) URL for a file of the mirror at baseURL — what Target
// finds when a sweep purges. Its errors are *PurgeError.
func (p Purge) Check(baseURL string) error {
	switch {
	case p.Method == "" && p.URL == "":
		return nil
	case p.Method == "":
		return &PurgeError{Setting: "purge_method", Why: "is empty, and a purge URL needs one (PURGE)"}
	case p.URL == "":
		return &PurgeError{Setting: "purge_url", Why: "is empty, and a purge method needs one"}
	case !purgeMethod.MatchString(p.Method):
		return &PurgeError{Setting: "purge_method", Why: "is not an HTTP method in capitals (PURGE, BAN)"}
	}
	base := strings.TrimSuffix(baseURL, "/")
	_, err := p.Target(base, base+"/firefox/releases/1.5/win32/en-US/Firefox%20Setup%201.5.exe")
	return err
}

// NeedsPurge reports whether a verification of f says the cache serves an
// earlier version: the manifest changed the file (it has a previous hash)
// and the mirror's bytes are not the new ones — the previous version
// (Result.Stale), or another size or digest, which a respun file's stale
// copy most likely has.
func NeedsPurge(f File, res checks.Result) bool {
	if f.PreviousHash == "" {
		return false
	}
	return res.Kind == checks.KindChecksumMismatch || res.Kind == checks.KindSizeMismatch
}

// RefreshStale handles a verification res of f at t on a mirror whose
// base URL is baseURL: when the mirror can be purged (p) and res says it
// serves an earlier version (NeedsPurge), the file is purged from its
// cache and verified again in full (once: a cache that still serves it
// wrong is reported so), and the result is the new verification's, its
// Detail saying what the purge did; a purge that fails leaves res, noted.
// Any other res is returned as it is.
func RefreshStale(ctx context.Context, c *checks.Client, p Purge, baseURL string, f File, t checks.Target, res checks.Result) checks.Result {
	if !p.Set() || !NeedsPurge(f, res) {
		return res
	}
	target, err := p.Target(baseURL, t.URL)
	if err != nil {
		res.Detail = joinDetail(res.Detail, "not purged: "+err.Error())
		return res
	}
	pr := checks.Purge(ctx, c, p.Method, target)
	switch {
	case pr.Kind == checks.KindInternal && ctx.Err() != nil:
		return pr
	case pr.Kind.Failed() && pr.Kind != checks.KindNotFound:
		res.Detail = joinDetail(res.Detail, fmt.Sprintf("purge refused: %s: %s", pr.Kind, pr.Detail))
		return res
	}
	again := checks.Verify(ctx, c, t)
	note := "purged (it served an earlier version), fetched again"
	if again.Kind.Failed() {
		note = "purged, but still served wrong"
	}
	again.Detail = joinDetail(again.Detail, note)
	return again
}
