package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/mirrorsentry/sentry/sentry/demo"
)

// runDemo builds the demo's throwaway world, runs the commands an operator
// would run against it, shows what the redirector now does, and removes
// everything, whatever happens.
func runDemo(ctx context.Context, env *Env) (err error) {
	start := time.Now()
	out := env.Stdout
	w, err := demo.Start(ctx, out)
	if err != nil {
		return fmt.Errorf("demo set-up: %w", err)
	}
	defer func() {
		fmt.Fprintln(out, "\ncleaning up: stopping the mirrors and the PostgreSQL cluster…")
		if cerr := w.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("demo clean-up: %w", cerr)
		}
		if err == nil {
			fmt.Fprintf(out, "demo done in %s\n", time.Since(start).Round(100*time.Millisecond))
		}
	}()
	section := func(title string) { fmt.Fprintf(out, "\n== %s\n\n", title) }
	command := func(args ...string) error {
		args = append(args, "--config", w.ConfigPath)
		fmt.Fprintf(out, "$ sentry %s\n", joinArgs(args))
		if code := Main(ctx, env, args); code != ExitOK {
			return fmt.Errorf("sentry %s exited %d", joinArgs(args), code)
		}
		return nil
	}

	section(fmt.Sprintf("a master with release %s (%d files, names with spaces, three languages) and %d mirrors",
		demo.Release, len(w.Release.Files), w.Mirrors()))
	w.Describe(out)

	section("create the bouncer tables and sentry's own")
	if err := command("db", "migrate"); err != nil {
		return err
	}
	if err := w.Seed(ctx); err != nil {
		return fmt.Errorf("demo bouncer rows: %w", err)
	}
	fmt.Fprintf(out, "(bouncer rows added: 2 products × 3 :lang locations, %d mirrors with their prime modes)\n", w.Mirrors())

	section("the release hook's command: prime, verify and mark")
	if err := command("prime", "--release", demo.Release); err != nil {
		return err
	}

	section("what the bouncer's sentry_log now says")
	if err := w.ShowLog(ctx, out); err != nil {
		return err
	}
	section("the redirector's view: mirrors it now chooses among, per location")
	if err := w.ShowRedirector(ctx, out); err != nil {
		return err
	}
	section("an integrity sweep, as cron or `sentry run` would start it")
	if err := command("sweep"); err != nil {
		return err
	}
	section("what ops read: the failure report and the release's uptake")
	if err := command("report"); err != nil {
		return err
	}
	fmt.Fprintln(out)
	return command("report", "--release", demo.Release)
}

func joinArgs(args []string) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		s += a
	}
	return s
}
