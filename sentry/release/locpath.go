package release

import (
	"fmt"
	"net/url"
	"strings"
)

// A location's path as the bouncer stores it, and the manifest path it
// stands for (DESIGN section 4, docs/CONTRACTS.md section 2).
//
// The redirector copies mirror_locations.path into the redirect as stored,
// after replacing ":lang": what a mirror serves for it is that path
// unescaped once, as every HTTP server decodes a request's path. So a path
// may be stored raw ("Firefox Setup 1.5.exe") or percent-escaped, as
// Mozilla's own data writes it ("Firefox%20Setup%201.5.exe"): both stand
// for the manifest entry "Firefox Setup 1.5.exe". sentry unescapes a stored
// path once to find its manifest entry, and builds every URL from the
// manifest path (primer.FileURL, which escapes once): never escaped twice.
//
// A stored path whose escapes are invalid, or which unescapes to something
// no manifest path can be (an escaped slash that changes its segments, a
// "." or ".." segment, an empty one, a control character), or outside the
// release directory, stands for no file: the location is unresolved, and
// nothing is marked for it.

// storedRel checks a stored location path and returns its part under the
// release directory dir (a "/"-delimited path such as
// "/firefox/releases/1.5/"), still in its stored form (":lang" and escapes
// as stored).
func storedRel(stored, dir string) (string, error) {
	if _, err := url.PathUnescape(stored); err != nil {
		return "", fmt.Errorf("path unusable: %s", escapeError(err))
	}
	if !strings.HasPrefix(stored, "/") {
		return "", fmt.Errorf("path unusable: it does not start with /")
	}
	segs := strings.Split(stored[1:], "/")
	for _, s := range segs {
		if err := checkSegment(s); err != nil {
			return "", fmt.Errorf("path unusable: %w", err)
		}
	}
	dirSegs := strings.Split(strings.Trim(dir, "/"), "/")
	if len(segs) <= len(dirSegs) {
		return "", fmt.Errorf("path is not under the release directory %s", dir)
	}
	for i, d := range dirSegs {
		if u, _ := url.PathUnescape(segs[i]); u != d {
			return "", fmt.Errorf("path is not under the release directory %s", dir)
		}
	}
	return strings.Join(segs[len(dirSegs):], "/"), nil
}

// checkSegment checks one segment of a stored path, as a server decodes
// it: an escaped slash would change the path's segments, "." and ".."
// leave the directory, an empty segment or a control character is no
// manifest path's.
func checkSegment(s string) error {
	u, err := url.PathUnescape(s)
	switch {
	case err != nil:
		return fmt.Errorf("%s", escapeError(err))
	case u == "":
		return fmt.Errorf("an empty segment")
	case u == "." || u == "..":
		return fmt.Errorf("a %q segment", u)
	case strings.Contains(u, "/"):
		return fmt.Errorf("segment %q holds an escaped slash", s)
	case strings.ContainsFunc(u, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("segment %q holds a control character", s)
	}
	return nil
}

// escapeError is url.PathUnescape's error in words.
func escapeError(err error) string {
	if e, ok := err.(url.EscapeError); ok {
		return fmt.Sprintf("invalid percent-escape %q", string(e))
	}
	return err.Error()
}

// fileFor is the manifest path a stored rel (storedRel) stands for in
// language lang ("" for a path without ":lang"): ":lang" replaced in the
// stored form, as the redirector does, then unescaped once, as the mirror
// does.
func fileFor(rel, lang string) (string, error) {
	if strings.Contains(lang, "/") {
		return "", fmt.Errorf("path unusable in language %q: a language holds no slash", lang)
	}
	stored := strings.ReplaceAll(rel, ":lang", lang)
	segs := strings.Split(stored, "/")
	for i, s := range segs {
		if err := checkSegment(s); err != nil {
			if lang != "" {
				return "", fmt.Errorf("path unusable in language %q: %w", lang, err)
			}
			return "", fmt.Errorf("path unusable: %w", err)
		}
		segs[i], _ = url.PathUnescape(s)
	}
	return strings.Join(segs, "/"), nil
}

// langParts are a stored rel's parts around its ":lang"s, each unescaped
// (a valid stored path never splits an escape there): what manifestLangs
// matches manifest paths against.
func langParts(rel string) []string {
	parts := strings.Split(rel, ":lang")
	for i, p := range parts {
		if u, err := url.PathUnescape(p); err == nil {
			parts[i] = u
		}
	}
	return parts
}
