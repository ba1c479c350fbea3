package manifest

import (
	"fmt"
	"io"
)

// writeChecksums writes entries in Mozilla's ".checksums" style, one
// "HASH ALGO SIZE PATH" line each, for the tests that make Parse read that
// style back (sizes survive the round trip). sentry itself only reads the
// style. An entry Parse could not return, or one without a size, is an
// error wrapping ErrInvalidEntry, and nothing is written.
func writeChecksums(w io.Writer, entries []Entry) error {
	for i, e := range entries {
		msg := checkEntry(e)
		if msg == "" && e.Size < 0 {
			msg = "no size"
		}
		if msg != "" {
			return fmt.Errorf("manifest: entry %d: %s: %w", i, msg, ErrInvalidEntry)
		}
	}
	for _, e := range entries {
		if _, err := fmt.Fprintf(w, "%s %s %d %s\n", e.Hash, e.Algo, e.Size, e.Path); err != nil {
			return err
		}
	}
	return nil
}
