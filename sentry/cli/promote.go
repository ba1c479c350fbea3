package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mirrorsentry/sentry/sentry/internal/humanize"
	"github.com/mirrorsentry/sentry/sentry/promote"
)

func init() {
	register(&command{
		name: "promote",
		summary: "Show how far release R's products have spread, and point the bouncer aliases of releases.aliases at them: " +
			"each alias moves once every location of its product reached releases.promote_at of its eligible capacity.",
		usage:   "--release R [--alias A] [--dry-run] [--force]",
		formats: []string{"table", "json"},
		more: `Each alias of releases.aliases (or --alias A only) is pointed
(mirror_aliases.related_product) at its pattern with R: Firefox-{release}
gives Firefox-2.0. It moves when every location of that product has
reached releases.promote_at (0.8) of its rating-weighted uptake among the
mirrors the redirector can offer for it (admin switch, region row, scheme),
held verified, and not to a release first primed before the one the alias
names now. Every move is recorded (sentry_alias_moves), logged and sent to
the webhooks (alias_promoted). A prime and a sweep move aliases by
themselves when they are due; this command shows why one did not, and
moves it by hand.

exit codes:
  0  every alias asked for names R's product now (moved, or already), or
     would with --dry-run
  1  one does not: below the threshold, or R first primed before the
     release it names (without --force), the bouncer has no such product,
     R never primed, no releases.aliases, database unreachable
  2  bad command-line usage
`,
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			rel := fs.String("release", "", "the release `R` whose products the aliases are to name (required)")
			alias := fs.String("alias", "", "judge and move only this alias `A` (of releases.aliases)")
			dry := fs.Bool("dry-run", false, "show what would be done; move nothing")
			force := fs.Bool("force", false, "move even below releases.promote_at, or to a release first primed before the current one (a rollback)")
			return func(ctx context.Context, env *Env, c *common, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if err := requireRelease(*rel); err != nil {
					return err
				}
				return runPromote(ctx, env, c, promote.Request{Release: *rel, Alias: *alias, DryRun: *dry, Force: *force, By: "command"})
			}
		},
	})
}

func runPromote(ctx context.Context, env *Env, c *common, req promote.Request) error {
	d, closeDeps, err := openDeps(ctx, env, c)
	if err != nil {
		return err
	}
	defer closeDeps()
	if err := d.Store.RequireSchema(ctx); err != nil {
		return err
	}
	p := &promote.Promoter{Config: d.Config, Store: d.Store, Logger: env.Logger, Observer: d.Observer}
	outs, err := p.Release(ctx, req)
	if err != nil {
		return err
	}
	if c.format == "json" {
		err = writeJSON(env.Stdout, map[string]any{"release": req.Release, "promote_at": d.Config.Releases.PromoteAt,
			"dry_run": req.DryRun, "aliases": outs})
	} else {
		err = writePromoteTable(env.Stdout, req, d.Config.Releases.PromoteAt, outs, c.wide)
	}
	if err != nil {
		return err
	}
	var not []string
	for _, o := range outs {
		if !o.Live() {
			not = append(not, fmt.Sprintf("%s not moved to %s: %s", o.Alias, o.Product, o.Why))
		}
	}
	if len(not) > 0 {
		hint := ""
		if !req.Force {
			hint = " (--force moves it anyway)"
		}
		return errors.New(strings.Join(not, "; ") + hint)
	}
	return nil
}

// writePromoteTable writes each alias's judgement and its product's
// locations with their uptake, in 80 columns (or as wide as needed).
func writePromoteTable(w io.Writer, req promote.Request, at float64, outs []promote.Outcome, wide bool) error {
	width := 79
	if wide {
		width = 1 << 20
	}
	var b strings.Builder
	mode := ""
	if req.DryRun {
		mode = " (dry run: nothing moved)"
	}
	fmt.Fprintf(&b, "release %s: an alias moves when every location reaches %.0f%%%s\n", req.Release, at*100, mode)
	for _, o := range outs {
		result := "not moved: " + o.Why
		switch {
		case o.Moved:
			result = "moved: " + o.Why
		case o.WouldMove:
			result = "would move: " + o.Why
		case o.Already:
			result = "already there"
		}
		from := o.From
		if from == "" {
			from = "(none)"
		}
		b.WriteString("\n" + humanize.Clip(fmt.Sprintf("%s: %s → %s", o.Alias, from, o.Product), width) + "\n")
		b.WriteString("  " + humanize.Clip(result, width-2) + "\n")
		if len(o.Locations) == 0 {
			continue
		}
		const row = "  %-12s %7s %13s  %s\n"
		fmt.Fprintf(&b, row, "OS", "UPTAKE", "ELIGIBLE", "LOCATION")
		for _, l := range o.Locations {
			up := "none"
			if l.Uptake != nil {
				up = fmt.Sprintf("%.1f%%", *l.Uptake*100)
			}
			line := strings.TrimSuffix(fmt.Sprintf(row, humanize.Clip(l.OS, 12), up, fmt.Sprintf("%d/%d", l.EligibleAvailable, l.EligibleTotal), ""), "\n")
			b.WriteString(line + humanize.ClipLeft(l.Path, max(10, width-len(line))) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
