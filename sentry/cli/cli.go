// Package cli is sentry's command line: subcommands, flags, logging set-up
// and the mapping of outcomes to the exit codes of docs/CONTRACTS.md, section 6.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/internal/humanize"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Exit codes of the contract.
const (
	ExitOK      = 0 // the run completed; mirrors may have failed (that is data)
	ExitFailure = 1 // the run could not be done
	ExitUsage   = 2 // bad command-line usage
	ExitGuarded = 3 // the run completed but the mass-failure guard held back marking
)

// errUsage marks an error as bad usage (exit 2).
var errUsage = errors.New("usage")

// errGuarded is returned by commands whose run completed with marking held
// back by the mass-failure guard (exit 3).
var errGuarded = errors.New("mass-failure guard held back marking")

// Env is what a command runs with: its streams, environment and logger.
// Tests build one over buffers.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// IsTerminal reports whether Stderr is a terminal (live progress).
	IsTerminal bool
	Logger     *slog.Logger
}

// common are the flags every subcommand takes (and --format and --wide,
// those with tables).
type common struct {
	config    string
	format    string
	verbose   bool
	logFormat string
	logLevel  string
	wide      bool
}

type command struct {
	name    string
	summary string
	usage   string // argument synopsis after the name
	// flags adds the command's own flags; run does the work with the
	// arguments left over.
	flags func(fs *flag.FlagSet) func(ctx context.Context, env *Env, c *common, args []string) error
	// formats the command accepts for --format; the first is the default.
	formats []string
	// more is said after the flags in the command's --help.
	more string
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// Run runs the command line args (without the program name) with the
// process's streams and environment and returns the exit code.
func Run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &Env{
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		Getenv:     os.Getenv,
		IsTerminal: isTerminal(os.Stderr),
	}
	return Main(ctx, env, args)
}

// Main runs args in env and returns the exit code.
func Main(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 {
		topUsage(env.Stderr)
		return ExitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		topUsage(env.Stdout)
		return ExitOK
	case "version", "--version":
		fmt.Fprintf(env.Stdout, "sentry %s\n", config.Version)
		return ExitOK
	case "db", "mirror":
		// Groups: `sentry db migrate|prune`, `sentry mirror list | show
		// NAME | …` (a mirror's name may come before its flags).
		if len(args) < 2 || strings.HasPrefix(args[1], "-") {
			if len(args) >= 2 && isHelp(args[1]) {
				fmt.Fprint(env.Stdout, groupUsage(name))
				return ExitOK
			}
			fmt.Fprintf(env.Stderr, "sentry %s: want a subcommand:\n%s", name, groupUsage(name))
			return ExitUsage
		}
		name += " " + args[1]
		if args[0] == "mirror" {
			args = append([]string{args[0]}, namesLast(args[2:])...)
		} else {
			args = args[1:]
		}
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(env.Stderr, "sentry: unknown command %q\n\n", name)
		topUsage(env.Stderr)
		return ExitUsage
	}
	return runCommand(ctx, env, cmd, args[1:])
}

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

func runCommand(ctx context.Context, env *Env, cmd *command, args []string) int {
	fs := flag.NewFlagSet("sentry "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &common{}
	fs.StringVar(&c.config, "config", "config.yaml", "configuration `FILE` (secrets may come from SENTRY_* environment variables)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log lines on stderr as `text|json`")
	fs.StringVar(&c.logLevel, "log-level", "info", "least severe logs shown: `debug|info|warn|error`")
	fs.BoolVar(&c.verbose, "verbose", false, "the same as --log-level debug")
	if len(cmd.formats) > 0 {
		fs.StringVar(&c.format, "format", cmd.formats[0], "output `"+strings.Join(cmd.formats, "|")+"`")
	}
	if contains(cmd.formats, "table") {
		fs.BoolVar(&c.wide, "wide", false, "tables as wide as their contents, instead of fitting 80 columns")
	}
	run := cmd.flags(fs)
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: sentry %s [flags] %s\n\n%s\n\nflags:\n", cmd.name, cmd.usage, cmd.summary)
		printFlags(w, fs)
		if cmd.more != "" {
			fmt.Fprintf(w, "\n%s", cmd.more)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(env.Stdout)
			return ExitOK
		}
		fmt.Fprintf(env.Stderr, "sentry %s: %s\n", cmd.name, flagError(err))
		usage(env.Stderr)
		return ExitUsage
	}
	if len(cmd.formats) > 0 && !contains(cmd.formats, c.format) {
		fmt.Fprintf(env.Stderr, "sentry %s: --format %q: want one of %s\n", cmd.name, c.format, strings.Join(cmd.formats, ", "))
		return ExitUsage
	}
	if env.Logger == nil {
		log, err := newLogger(env.Stderr, c)
		if err != nil {
			fmt.Fprintf(env.Stderr, "sentry %s: %v\n", cmd.name, err)
			return ExitUsage
		}
		env.Logger = log
	}
	err := run(ctx, env, c, fs.Args())
	if err == nil {
		return ExitOK
	}
	// An error may quote what a mirror or the database holds.
	fmt.Fprintf(env.Stderr, "sentry %s: %s\n", cmd.name, safetext.Lines(err.Error()))
	switch {
	case errors.Is(err, errUsage):
		usage(env.Stderr)
		return ExitUsage
	case errors.Is(err, errGuarded):
		return ExitGuarded
	default:
		return ExitFailure
	}
}

// newLogger is the logger --log-format and --log-level (or --verbose) ask
// for, writing to w.
func newLogger(w io.Writer, c *common) (*slog.Logger, error) {
	levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	level, ok := levels[c.logLevel]
	if !ok {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	if c.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("--log-format %q: want text or json", c.logFormat)
}

// printFlags lists a command's flags as --help shows them, in the one
// style of the whole help: "--name VALUE".
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if name != "" {
			head += " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n        %s%s\n", head, usage, def)
	})
}

// flagError restates package flag's errors in the help's flag style
// (--name, not -name).
func flagError(err error) string {
	msg := err.Error()
	for _, r := range []struct{ from, to string }{
		{"flag provided but not defined: -", "unknown flag --"},
		{"flag needs an argument: -", "flag needs an argument: --"},
		{" for flag -", " for flag --"},
	} {
		msg = strings.Replace(msg, r.from, r.to, 1)
	}
	return msg
}

func topUsage(w io.Writer) {
	fmt.Fprintf(w, "%s\n\nusage: sentry <command> [flags]\n\ncommands:\n",
		hanging("sentry "+config.Version+": primes and verifies download mirrors and keeps the bouncer database true.", 0))
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	width := len("version")
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, n := range names {
		fmt.Fprintf(w, "  %-*s  %s\n", width, n, hanging(firstSentence(commands[n].summary), 4+width))
	}
	fmt.Fprintf(w, "  %-*s  %s\n", width, "version", "Print sentry's version.")
	fmt.Fprint(w, `
Every command takes --config FILE, --log-format text|json, --log-level
debug|info|warn|error (--verbose: debug) and --help; those that print tables
take --format and --wide. Run `+"`sentry <command> --help`"+` for a command's flags.

exit codes:
  0  the run completed (mirrors may have failed: that is data); --help; version
  1  the run could not be done: bad configuration, database unreachable or
     its schema not current, manifest unusable, nothing to check (no product,
     location or active mirror), an unknown mirror or release, interrupted
  2  bad command-line usage
  3  the run completed, but the mass-failure guard held back marking
`)
}

// groupUsage lists the subcommands of group (the commands named "group
// …"), each with its argument synopsis and its first sentence.
func groupUsage(group string) string {
	var b strings.Builder
	b.WriteString("usage:\n")
	names := make([]string, 0)
	for n := range commands {
		if strings.HasPrefix(n, group+" ") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		synopsis := "sentry " + n
		if s := commands[n].usage; s != "" {
			synopsis += " " + s
		}
		fmt.Fprintf(&b, "  %s\n      %s\n", synopsis, hanging(firstSentence(commands[n].summary), 6))
	}
	b.WriteString("Run `sentry " + group + " <subcommand> --help` for its flags.\n")
	return b.String()
}

// hanging wraps s to end by column 80 when it starts at column col, each
// further line indented to col.
func hanging(s string, col int) string {
	return strings.ReplaceAll(humanize.Wrap(s, 80-col, ""), "\n", "\n"+strings.Repeat(" ", col))
}

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// usageErrorf reports bad usage (exit 2).
func usageErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// noArgs rejects stray positional arguments.
func noArgs(args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected argument %q", args[0])
	}
	return nil
}

// requireRelease checks the --release R of a command that needs one: it
// is given, and is a release name (releaseName).
func requireRelease(rel string) error {
	if rel == "" {
		return usageErrorf("--release is required")
	}
	return releaseName(rel)
}

// releaseName checks that --release R is a release name
// (release.ValidateName).
func releaseName(rel string) error {
	if err := release.ValidateName(rel); err != nil {
		return usageErrorf("--release: %v", err)
	}
	return nil
}

// loadConfig reads the configuration named by --config.
func loadConfig(env *Env, c *common) (*config.Config, error) {
	return config.Load(c.config, env.Getenv)
}

// openStore opens the database of cfg. When its URL came from the
// environment, an error says so (SENTRY_DATABASE_URL), since the file is
// then not where to look.
func openStore(ctx context.Context, cfg *config.Config, maxConns int) (*store.Store, error) {
	st, err := store.Open(ctx, cfg.Database.URL, maxConns)
	if err != nil {
		if src := cfg.Source("database.url"); src != "database.url" {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		return nil, err
	}
	return st, nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
