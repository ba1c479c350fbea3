// Package manifest parses a release's checksum manifest: the list of files a
// release consists of, each with the checksum (and sometimes the size) that a
// mirror's copy must match.
//
// Two formats are read, detected line by line, so one manifest may mix them:
//
//   - coreutils style, as written by sha256sum / sha512sum:
//     "HASH  PATH" (text mode, two spaces) or "HASH *PATH" (binary mode). The
//     algorithm follows from the hash length: 64 hex digits is sha256, 128 is
//     sha512. A line starting with a backslash is coreutils' escaped form: its
//     file name escapes a backslash as `\\`, a newline as `\n` (and, since
//     coreutils 9, a carriage return as `\r`). The BSD tagged form written by
//     "sha256sum --tag", "SHA256 (PATH) = HASH" or "SHA512 (PATH) = HASH", is
//     accepted too, escaped or not.
//   - Mozilla's ".checksums" style: "HASH ALGO SIZE PATH", single spaces between
//     the first three fields, PATH the rest of the line (it may hold spaces).
//
// Only sha256 and sha512 entries are kept. md5 and sha1 are known but weak:
// their lines (Mozilla's files carry them beside the sha512 line of every file,
// and "md5sum --tag" writes "MD5 (PATH) = HASH") are checked for form and for
// a size that agrees with the path's other lines, and are otherwise ignored;
// a path with only md5/sha1 lines is an error. When a path has both a sha256
// and a sha512 line, the sha256 one is kept: a deterministic choice, and the
// cheaper hash to verify.
//
// The manifest is the staging master's word, so Parse is strict: every line
// that is not blank must be an entry, and every problem is a *LineError naming
// the manifest and the 1-based line, wrapping ErrMalformed. Paths must be
// relative and stay inside the release directory (see Parse).
package manifest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLineLength is the longest manifest line Parse accepts, in bytes, not
// counting the line end ("\n" or "\r\n"). A longer line is a *LineError.
const MaxLineLength = 64 << 10

// DefaultMaxEntries is how many files (distinct paths) Parse accepts in a
// manifest; ParseMax takes another cap. A release has hundreds to tens of
// thousands of files; a manifest naming more is not read further, so that
// an endless one holds a bounded memory (a few hundred bytes per path).
const DefaultMaxEntries = 100_000

// Algo names a checksum algorithm a manifest entry can carry. Only SHA256 and
// SHA512 appear in parsed entries.
type Algo string

// The algorithms of parsed entries.
const (
	SHA256 Algo = "sha256"
	SHA512 Algo = "sha512"
)

// Valid reports whether a is one of the algorithms entries carry (SHA256 or
// SHA512).
func (a Algo) Valid() bool { return a == SHA256 || a == SHA512 }

// HexLen is the length of a's digest in hexadecimal digits: 64 for SHA256,
// 128 for SHA512, 0 for any other value.
func (a Algo) HexLen() int {
	switch a {
	case SHA256:
		return 2 * sha256.Size
	case SHA512:
		return 2 * sha512.Size
	}
	return 0
}

// New returns a fresh hasher for a. Feed it a file's bytes and compare
// hex.EncodeToString(h.Sum(nil)) with Entry.Hash.
//
// New panics when a is not Valid: entries from Parse always are, so a panic
// means a programming error (a zero or hand-made Algo).
func (a Algo) New() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New()
	case SHA512:
		return sha512.New()
	}
	panic(fmt.Sprintf("manifest: Algo.New on unsupported algorithm %q", string(a)))
}

// String returns the algorithm's name ("sha256", "sha512").
func (a Algo) String() string { return string(a) }

// Entry is one file of a release.
type Entry struct {
	// Path is the file's path relative to the release directory, clean in
	// the sense of path.Clean: no leading "/", no "." or ".." segments, no
	// empty segments, no trailing "/". It is a raw file name, not URL-escaped:
	// escape each segment (url.PathEscape) before putting it in a URL, and
	// never hand it to url.Parse as a reference, since a name may hold '%',
	// '?', '#' or a colon in its first segment.
	Path string
	// Algo is the algorithm of Hash, SHA256 or SHA512.
	Algo Algo
	// Hash is the expected digest in lower-case hexadecimal, Algo.HexLen()
	// digits long.
	Hash string
	// Size is the expected size in bytes, or -1 when the manifest gives none
	// (coreutils style never does; the caller then asks the master).
	Size int64
	// Line is the 1-based manifest line the hash was taken from.
	Line int
}

// Manifest is a parsed manifest: its entries in manifest order, and a lookup
// by path. A Manifest is immutable and safe for concurrent use.
type Manifest struct {
	entries []Entry
	index   map[string]int
}

// Entries returns a copy of the entries, in the order their paths first
// appear in the manifest (a path merged from several lines keeps the position
// of its first line).
func (m *Manifest) Entries() []Entry {
	out := make([]Entry, len(m.entries))
	copy(out, m.entries)
	return out
}

// Lookup returns the entry for path. The match is exact: path must be in the
// clean relative form of Entry.Path (for example "win32/de/Firefox Setup
// 1.5.exe", not "./win32/..." or "/win32/...").
func (m *Manifest) Lookup(path string) (Entry, bool) {
	i, ok := m.index[path]
	if !ok {
		return Entry{}, false
	}
	return m.entries[i], true
}

// Len returns the number of entries.
func (m *Manifest) Len() int { return len(m.entries) }

// ErrMalformed is wrapped by every error Parse returns for the manifest's
// content (a *LineError). Errors reading the input are not wrapped with it,
// so a caller can tell a broken manifest from a broken connection.
var ErrMalformed = errors.New("malformed manifest")

// ErrTooManyEntries is wrapped (with ErrMalformed) by the *LineError of a
// manifest naming more files than its cap.
var ErrTooManyEntries = errors.New("manifest names too many files")

// ErrInvalidEntry is wrapped by WriteSums errors for an entry that Parse
// would not return (bad path, algorithm, hash or size).
var ErrInvalidEntry = errors.New("invalid manifest entry")

// LineError is a problem with a manifest's content. Name is the name the
// caller gave Parse, Line the 1-based line number (0 when the problem is not
// on one line, such as an empty manifest). It unwraps to ErrMalformed.
//
// Msg quotes (and truncates) the offending hash or path, so a LineError is
// safe to log as long as Name is; Name is the caller's and is printed as is,
// so do not pass a URL with credentials in it.
type LineError struct {
	Name string
	Line int
	Msg  string
	// cause is a second error it wraps (ErrTooManyEntries), or nil.
	cause error
}

// Error returns "NAME:LINE: MSG", or "NAME: MSG" when Line is 0.
func (e *LineError) Error() string {
	if e.Line <= 0 {
		return e.Name + ": " + e.Msg
	}
	return e.Name + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// Unwrap returns ErrMalformed, and ErrTooManyEntries for a manifest over
// its cap.
func (e *LineError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrMalformed, e.cause}
	}
	return []error{ErrMalformed}
}

// algo indices for the per-path bookkeeping during Parse; strong ones first.
type algoID int

const (
	idSHA256 algoID = iota
	idSHA512
	idMD5
	idSHA1
	numAlgos
)

var algoNames = [numAlgos]string{"sha256", "sha512", "md5", "sha1"}
var algoHexLen = [numAlgos]int{64, 128, 32, 40}

func (id algoID) strong() bool { return id == idSHA256 || id == idSHA512 }

func (id algoID) algo() Algo {
	if id == idSHA512 {
		return SHA512
	}
	return SHA256
}

// lookupAlgo maps an algorithm word (any case) of the Mozilla or tagged form.
func lookupAlgo(word string) (algoID, bool) {
	for id, n := range algoNames {
		if strings.EqualFold(word, n) {
			return algoID(id), true
		}
	}
	return 0, false
}

// parsedLine is one entry line before merging.
type parsedLine struct {
	path string
	algo algoID
	hash string
	size int64
}

// pathState is what Parse remembers about one path while reading.
type pathState struct {
	entry     int   // index in entries, -1 while the path has only weak lines
	firstLine int   // first line naming the path
	size      int64 // first size given, -1 if none yet
	sizeLine  int
	hashes    [numAlgos]string // per algorithm, the first hash seen
	hashLines [numAlgos]int
}

// Parse reads a manifest from r. name identifies the manifest in errors (for
// example "SHA256SUMS" or its URL without credentials).
//
// Parse streams: it holds one line at a time (at most MaxLineLength bytes)
// besides the entries, and never panics. Its memory grows with the number of
// distinct paths, which is capped at DefaultMaxEntries (ParseMax for
// another cap): a manifest naming more is a *LineError wrapping
// ErrTooManyEntries, on the line of the first path past the cap. The
// caller should still bound the input (io.LimitReader): a line may repeat
// a path forever.
//
// Rules, each violation a *LineError naming the line:
//   - blank lines (empty or only spaces and tabs) are skipped; "\r\n" line
//     ends are accepted, and a UTF-8 byte order mark before the first line is
//     ignored; a line longer than MaxLineLength is an error;
//   - any other line must match a format of the package comment; a hash
//     must be hexadecimal of the algorithm's length (it is normalised to lower
//     case); a Mozilla size must be a non-negative decimal integer; an
//     algorithm other than sha256, sha512, md5 and sha1 is an error;
//   - a path must be valid UTF-8 and hold no control character (including
//     NUL, tab, CR and the C1 range); it must not be empty, absolute, end in
//     "/", or have a ".." segment; a leading "./", other "." segments and
//     repeated slashes are cleaned away as path.Clean does, and a path that
//     cleans to "." is an error; in an escaped line, a backslash followed by
//     anything but '\\', 'n' or 'r' is an error. Backslashes in a path are
//     ordinary characters, not separators, except that ".." between
//     backslashes is refused too (a Windows mirror would step out);
//   - a path named on several lines must have the same hash on all lines of
//     one algorithm and the same size on all lines that give one (the error
//     names both lines); identical repeats are fine; a size given on any line
//     of the path (even an md5/sha1 line) becomes the entry's Size;
//   - a path with only md5/sha1 lines is an error naming its first line;
//   - a manifest without entries is an error (Line 0).
//
// Parse stops at the first problem. An error reading r is returned wrapped,
// and does not wrap ErrMalformed.
func Parse(r io.Reader, name string) (*Manifest, error) {
	return ParseMax(r, name, DefaultMaxEntries)
}

// ParseMax is Parse with a cap of maxEntries files (distinct paths, those
// with only md5/sha1 lines included); maxEntries <= 0 means
// DefaultMaxEntries.
func ParseMax(r io.Reader, name string, maxEntries int) (*Manifest, error) {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	br := bufio.NewReaderSize(r, MaxLineLength+2) // room for the line end
	var (
		entries []Entry
		state   = make(map[string]*pathState)
		lineNo  int
	)
	fail := func(line int, format string, args ...any) error {
		return &LineError{Name: name, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	for {
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fail(lineNo+1, "line is longer than %d bytes", MaxLineLength)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: reading manifest after line %d: %w", name, lineNo, err)
		}
		if len(raw) == 0 && err != nil { // io.EOF with nothing left
			break
		}
		lineNo++
		b := bytes.TrimSuffix(raw, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) > MaxLineLength {
			return nil, fail(lineNo, "line is longer than %d bytes", MaxLineLength)
		}
		if lineNo == 1 {
			b = bytes.TrimPrefix(b, []byte("\uFEFF"))
		}
		if len(bytes.Trim(b, " \t")) != 0 {
			pl, msg := parseLine(string(b))
			if msg != "" {
				return nil, fail(lineNo, "%s", msg)
			}
			if _, known := state[pl.path]; !known && len(state) >= maxEntries {
				return nil, &LineError{Name: name, Line: lineNo, cause: ErrTooManyEntries,
					Msg: fmt.Sprintf("the manifest names more than %d files, the most sentry reads", maxEntries)}
			}
			if msg := merge(&entries, state, pl, lineNo); msg != "" {
				return nil, fail(lineNo, "%s", msg)
			}
		}
		if err != nil { // io.EOF after a last line without "\n"
			break
		}
	}

	// Paths seen only with weak algorithms: report the earliest.
	weakOnly := 0
	var weakPath string
	for p, st := range state {
		if st.entry < 0 && (weakOnly == 0 || st.firstLine < weakOnly) {
			weakOnly, weakPath = st.firstLine, p
		}
	}
	if weakOnly > 0 {
		return nil, fail(weakOnly, "no sha256 or sha512 hash for %s (only md5/sha1)", quote(weakPath))
	}
	if len(entries) == 0 {
		return nil, fail(0, "manifest has no entries")
	}
	m := &Manifest{entries: entries, index: make(map[string]int, len(entries))}
	for i := range m.entries {
		e := &m.entries[i]
		e.Size = state[e.Path].size
		m.index[e.Path] = i
	}
	return m, nil
}

// merge records pl (read on line) into entries and state. It returns a
// non-empty message when pl conflicts with an earlier line.
func merge(entries *[]Entry, state map[string]*pathState, pl parsedLine, line int) string {
	st := state[pl.path]
	if st == nil {
		st = &pathState{entry: -1, firstLine: line, size: -1}
		state[pl.path] = st
	}
	if prev := st.hashes[pl.algo]; prev != "" && prev != pl.hash {
		return fmt.Sprintf("duplicate path %s with a different %s hash than on line %d",
			quote(pl.path), algoNames[pl.algo], st.hashLines[pl.algo])
	}
	if pl.size >= 0 {
		if st.size >= 0 && st.size != pl.size {
			return fmt.Sprintf("duplicate path %s with size %d, but size %d on line %d",
				quote(pl.path), pl.size, st.size, st.sizeLine)
		}
		if st.size < 0 {
			st.size, st.sizeLine = pl.size, line
		}
	}
	if st.hashes[pl.algo] == "" {
		st.hashes[pl.algo], st.hashLines[pl.algo] = pl.hash, line
	}
	if !pl.algo.strong() {
		return ""
	}
	e := Entry{Path: pl.path, Algo: pl.algo.algo(), Hash: pl.hash, Size: -1, Line: line}
	switch {
	case st.entry < 0:
		st.entry = len(*entries)
		*entries = append(*entries, e)
	case pl.algo == idSHA256 && (*entries)[st.entry].Algo == SHA512:
		// sha256 wins over sha512; the entry keeps its position.
		(*entries)[st.entry] = e
	}
	return ""
}

const malformedMsg = `malformed line: want "HASH  PATH", "HASH *PATH", "ALGO (PATH) = HASH" or "HASH ALGO SIZE PATH"`

// parseLine parses one non-blank line. On failure it returns a message.
func parseLine(line string) (parsedLine, string) {
	body, escaped := strings.CutPrefix(line, `\`)

	// BSD tagged form: WORD (PATH) = HASH, WORD without spaces.
	if i := strings.Index(body, " ("); i > 0 && isTagWord(body[:i]) {
		word, rest := body[:i], body[i+2:]
		j := strings.LastIndex(rest, ") = ")
		if j < 0 {
			return parsedLine{}, `malformed tagged line: want "ALGO (PATH) = HASH"`
		}
		id, ok := lookupAlgo(word)
		if !ok {
			return parsedLine{}, fmt.Sprintf("unsupported hash algorithm %s", quote(word))
		}
		return finish(id, rest[j+4:], rest[:j], escaped, -1)
	}

	hashField, rest, ok := strings.Cut(body, " ")
	if !ok {
		return parsedLine{}, malformedMsg
	}
	// coreutils: HASH  PATH or HASH *PATH.
	if p, ok := strings.CutPrefix(rest, " "); ok {
		return coreutils(hashField, p, escaped)
	}
	if p, ok := strings.CutPrefix(rest, "*"); ok {
		return coreutils(hashField, p, escaped)
	}

	// Mozilla: HASH ALGO SIZE PATH.
	fields := strings.SplitN(rest, " ", 3)
	if escaped || len(fields) != 3 || fields[0] == "" || fields[1] == "" {
		return parsedLine{}, malformedMsg
	}
	id, ok := lookupAlgo(fields[0])
	if !ok {
		if !isHex(hashField) {
			return parsedLine{}, malformedMsg
		}
		return parsedLine{}, fmt.Sprintf("unsupported hash algorithm %s", quote(fields[0]))
	}
	size, msg := parseSize(fields[1])
	if msg != "" {
		return parsedLine{}, msg
	}
	return finish(id, hashField, fields[2], false, size)
}

// coreutils finishes an untagged coreutils line: the algorithm follows from
// the hash length.
func coreutils(hashField, rawPath string, escaped bool) (parsedLine, string) {
	var id algoID
	switch len(hashField) {
	case algoHexLen[idSHA256]:
		id = idSHA256
	case algoHexLen[idSHA512]:
		id = idSHA512
	default:
		return parsedLine{}, fmt.Sprintf("hash %s is not 64 (sha256) or 128 (sha512) hexadecimal digits", quote(hashField))
	}
	return finish(id, hashField, rawPath, escaped, -1)
}

// finish checks the hash against the algorithm and the path, and builds the line.
func finish(id algoID, hashField, rawPath string, escaped bool, size int64) (parsedLine, string) {
	h, ok := lowerHex(hashField)
	if !ok || len(h) != algoHexLen[id] {
		return parsedLine{}, fmt.Sprintf("hash %s is not %d hexadecimal digits (%s)",
			quote(hashField), algoHexLen[id], algoNames[id])
	}
	if escaped {
		var msg string
		if rawPath, msg = unescape(rawPath); msg != "" {
			return parsedLine{}, msg
		}
	}
	p, msg := cleanPath(rawPath)
	if msg != "" {
		return parsedLine{}, msg
	}
	return parsedLine{path: p, algo: id, hash: h, size: size}, ""
}

// parseSize parses a Mozilla SIZE field: decimal digits only.
func parseSize(s string) (int64, string) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			if s[0] == '-' && len(s) > 1 && isDigits(s[1:]) {
				return 0, fmt.Sprintf("size %s is negative", quote(s))
			}
			return 0, fmt.Sprintf("size %s is not a non-negative integer", quote(s))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Sprintf("size %s is out of range", quote(s))
	}
	return n, ""
}

// unescape decodes a coreutils-escaped file name.
func unescape(s string) (string, string) {
	if !strings.Contains(s, `\`) {
		return s, ""
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Sprintf("bad escape in path %s: trailing backslash", quote(s))
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", fmt.Sprintf(`bad escape in path %s: "\%c" (want \\, \n or \r)`, quote(s), s[i])
		}
	}
	return b.String(), ""
}

// cleanPath validates a file name and returns its clean form.
func cleanPath(p string) (string, string) {
	if p == "" {
		return "", "empty path"
	}
	if !utf8.ValidString(p) {
		return "", fmt.Sprintf("path %s is not valid UTF-8", quote(p))
	}
	for _, r := range p {
		if r == 0 {
			return "", fmt.Sprintf("path %s contains a NUL character", quote(p))
		}
		if unicode.IsControl(r) {
			return "", fmt.Sprintf("path %s contains control character %U", quote(p), r)
		}
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Sprintf("path %s is absolute", quote(p))
	}
	// '\' counts as a separator here: a Windows mirror would take
	// "..\..\x" (sent as ..%5C..%5Cx) out of the release directory.
	for seg := range strings.SplitSeq(strings.ReplaceAll(p, `\`, "/"), "/") {
		if seg == ".." {
			return "", fmt.Sprintf(`path %s has a ".." segment`, quote(p))
		}
	}
	if strings.HasSuffix(p, "/") {
		return "", fmt.Sprintf("path %s ends in a slash (a directory, not a file)", quote(p))
	}
	c := path.Clean(p)
	if c == "." {
		return "", fmt.Sprintf("path %s names the release directory itself", quote(p))
	}
	return c, ""
}

// isTagWord reports whether s can be the algorithm word of a tagged line.
func isTagWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return s != ""
}

// hexClass classifies bytes: 1 lower-case hex digit, 2 upper-case hex digit.
var hexClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = 1
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c], t[c-'a'+'A'] = 1, 2
	}
	return t
}()

// lowerHex returns s in lower case and whether s is a non-empty string of
// hexadecimal digits. It does not allocate when s is already lower case.
func lowerHex(s string) (string, bool) {
	var acc uint8
	for i := 0; i < len(s); i++ {
		c := hexClass[s[i]]
		if c == 0 {
			return s, false
		}
		acc |= c
	}
	if acc&2 != 0 {
		s = strings.ToLower(s)
	}
	return s, s != ""
}

func isHex(s string) bool {
	_, ok := lowerHex(s)
	return ok
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if hexClass[s[i]] != 1 {
			return false
		}
	}
	return s != ""
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// quote quotes s for an error message, truncated so that a 64 KiB line does
// not end up in a log whole.
func quote(s string) string {
	const limit = 80
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// checkEntry reports why Parse could not have returned e, or "".
func checkEntry(e Entry) string {
	if !e.Algo.Valid() {
		return fmt.Sprintf("unsupported algorithm %s", quote(string(e.Algo)))
	}
	if len(e.Hash) != e.Algo.HexLen() || !isLowerHex(e.Hash) {
		return fmt.Sprintf("hash %s is not %d lower-case hexadecimal digits", quote(e.Hash), e.Algo.HexLen())
	}
	if e.Size < -1 {
		return fmt.Sprintf("size %d is negative", e.Size)
	}
	c, msg := cleanPath(e.Path)
	if msg != "" {
		return msg
	}
	if c != e.Path {
		return fmt.Sprintf("path %s is not clean (want %s)", quote(e.Path), quote(c))
	}
	return ""
}

// WriteSums writes entries in coreutils style, one "HASH  PATH" line each, as
// sha256sum and sha512sum do. A path holding a backslash is written in the
// escaped form ("\HASH  PATH" with the backslash doubled). Sizes are not
// written (the format has none). Parse reads the result back to the same
// paths, algorithms and hashes.
//
// Every entry is checked first: an entry Parse could not return (unclean or
// unsafe path, algorithm other than SHA256/SHA512, hash not lower-case hex
// of the right length) is an error wrapping ErrInvalidEntry, and nothing is
// written. Duplicate paths are not checked.
func WriteSums(w io.Writer, entries []Entry) error {
	for i, e := range entries {
		if msg := checkEntry(e); msg != "" {
			return fmt.Errorf("manifest: entry %d: %s: %w", i, msg, ErrInvalidEntry)
		}
	}
	bw := bufio.NewWriter(w)
	for _, e := range entries {
		if strings.Contains(e.Path, `\`) {
			bw.WriteByte('\\')
			bw.WriteString(e.Hash)
			bw.WriteString("  ")
			bw.WriteString(strings.ReplaceAll(e.Path, `\`, `\\`))
		} else {
			bw.WriteString(e.Hash)
			bw.WriteString("  ")
			bw.WriteString(e.Path)
		}
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("manifest: writing: %w", err)
	}
	return nil
}
