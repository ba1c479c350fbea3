package cli

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/sentry/report"
)

func runReport(ctx context.Context, env *Env, c *common, mirror, rel, sinceFlag string) error {
	now := time.Now()
	since, err := report.ParseSince(sinceFlag, now)
	if err != nil {
		return usageErrorf("--since: %v", err)
	}
	cfg, err := loadConfig(env, c)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, min(cfg.Database.MaxConns, 4))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RequireSchema(ctx); err != nil {
		return err
	}
	rep := report.New(st.Pool(), func() time.Time { return now })
	win := report.Window{Since: since, Until: now}
	out := env.Stdout
	switch {
	case mirror != "":
		r, err := rep.Mirror(ctx, mirror, win)
		if err != nil {
			return notFound(err)
		}
		return writeReport(out, c, r, now, report.WriteMirrorCSV, report.WriteMirrorTable)
	case rel != "":
		if err := releaseName(rel); err != nil {
			return err
		}
		r, err := rep.Release(ctx, rel)
		if err != nil {
			return notFound(err)
		}
		return writeReport(out, c, r, now, report.WriteReleaseCSV, report.WriteReleaseTable)
	default:
		r, err := rep.Mirrors(ctx, win)
		if err != nil {
			return err
		}
		return writeReport(out, c, r, now, report.WriteMirrorsCSV, report.WriteMirrorsTable)
	}
}

// writeReport writes a report in the command's --format: JSON, CSV
// (csv) or a table (table).
func writeReport[R any](out io.Writer, c *common, r R, now time.Time, csv func(io.Writer, R) error,
	table func(io.Writer, R, time.Time, bool) error) error {
	switch c.format {
	case "json":
		return report.WriteJSON(out, r)
	case "csv":
		return csv(out, r)
	}
	return table(out, r, now, c.wide)
}

// notFound says in one line that the mirror or release asked about does
// not exist (exit 1: the command line was right, the database has no such
// thing).
func notFound(err error) error {
	if errors.Is(err, report.ErrNotFound) {
		return errors.New(strings.ReplaceAll(err.Error(), "\n", " "))
	}
	return err
}
