package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func init() {
	register(&command{
		name:    "mirror maintenance",
		summary: "Announce a mirror's maintenance window: until it ends the mirror's locations are unhealthy (the redirector avoids it), its failures do not count and nothing is announced; then it is re-verified (its files hashed) before it is offered again.",
		usage:   "NAME --until TIME [--reason TEXT] | NAME --end",
		more: `TIME is a date and time in UTC (2026-11-25T18:00Z, "2026-11-25 18:00") or a
duration from now (2h, 1d12h). A window already holding gets the new end
and reason; --end ends it now. The window is recorded in the mirror's state
history (sentry report --mirror NAME) and shown on its page.
`,
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			until := fs.String("until", "", "the window's end: `TIME` in UTC, or a duration from now")
			reason := fs.String("reason", "", "what the mirror's admin said of it, shown on its page (`TEXT`)")
			end := fs.Bool("end", false, "end the mirror's window now")
			return func(ctx context.Context, env *Env, c *common, args []string) error {
				if len(args) != 1 {
					if len(args) == 0 {
						return usageErrorf("the mirror's NAME is required (mirror_mirrors.name)")
					}
					return usageErrorf("unexpected argument %q: one mirror at a time", args[1])
				}
				name := args[0]
				switch {
				case *end && (*until != "" || *reason != ""):
					return usageErrorf("--end ends the window now: give it alone, without --until or --reason")
				case !*end && *until == "":
					return usageErrorf("--until TIME is required (or --end)")
				}
				if err := checkReason(*reason); err != nil {
					return err
				}
				var t time.Time
				if !*end {
					var err error
					if t, err = parseUntil(*until, time.Now()); err != nil {
						return err
					}
				}
				return runMaintenance(ctx, env, c, name, t, *reason, *end)
			}
		},
	})
}

// namesLast moves the arguments before the first flag to the end, so
// that a command's NAME may come before its flags (package flag stops at
// the first argument that is not one).
func namesLast(args []string) []string {
	i := 0
	for i < len(args) && !strings.HasPrefix(args[i], "-") {
		i++
	}
	return append(append([]string{}, args[i:]...), args[:i]...)
}

// parseUntil reads --until: a time in UTC, or a duration from now.
func parseUntil(v string, now time.Time) (time.Time, error) {
	if d, err := config.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, usageErrorf("--until %q: want a duration above 0, or a time", v)
		}
		return now.Add(d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			if !t.After(now) {
				return time.Time{}, usageErrorf("--until %q is not in the future (it is %s now)", v, now.UTC().Format("2006-01-02 15:04 UTC"))
			}
			return t, nil
		}
	}
	return time.Time{}, usageErrorf("--until %q: want a time in UTC (2026-11-25T18:00Z, \"2026-11-25 18:00\") or a duration from now (2h, 1d)", v)
}

func checkReason(r string) error {
	if len(r) > 500 {
		return usageErrorf("--reason is %d bytes, at most 500", len(r))
	}
	if strings.ContainsFunc(r, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return usageErrorf("--reason must be one line, without control characters")
	}
	return nil
}

func runMaintenance(ctx context.Context, env *Env, c *common, name string, until time.Time, reason string, end bool) error {
	cfg, err := loadConfig(env, c)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, 2)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RequireSchema(ctx); err != nil {
		return err
	}
	if end {
		w, err := st.EndMaintenance(ctx, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "mirror %s: maintenance ended at %s; the next sweep re-verifies it (its files hashed) before it is offered again (`sentry sweep --mirror %s` does it now)\n",
			name, w.Until.UTC().Format("2006-01-02 15:04 UTC"), name)
		env.Logger.Info("maintenance ended", "mirror", name)
		return nil
	}
	w, err := st.StartMaintenance(ctx, name, until, reason)
	if errors.Is(err, store.ErrPast) {
		return usageErrorf("--until: %v", err)
	}
	if err != nil {
		return err
	}
	verb := "in maintenance"
	if !w.Started {
		verb = "maintenance window changed"
	}
	fmt.Fprintf(env.Stdout, "mirror %s: %s: %s; the redirector avoids it until then, and it is re-verified before it is offered again\n",
		name, verb, store.MaintenanceReason(w.Until, w.Reason))
	env.Logger.Info("maintenance", "mirror", name, "until", w.Until, "started", w.Started)
	return nil
}
