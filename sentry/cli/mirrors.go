package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/internal/humanize"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// `sentry mirror list | show | set | forget`: a mirror's own settings
// (sentry_mirror_settings) and what sentry learned of it
// (sentry_mirror_priming, sentry_mirror_ranges), without SQL. `set`
// refuses what a run could not use (mirrorjob.CheckSettings, the rules the
// runs apply) before it writes anything.

// settingFlag is a setting of `sentry mirror set`: its flag and its
// column of sentry_mirror_settings.
type settingFlag struct {
	flag, column, value, usage string
	// apply sets the parsed value on s ("" for --unset: the default).
	apply func(s *store.MirrorSettings, v string) error
}

// settingFlags are the settings `sentry mirror set` changes, in the
// table's column order.
var settingFlags = []settingFlag{
	{"prime-mode", mirrorjob.ColumnPrimeMode, "MODE", "how the mirror is primed: `MODE` pull (a pull-through cache), trigger (told by a signed POST) or passive (syncs on its own)",
		func(s *store.MirrorSettings, v string) error { s.Mode = v; return nil }},
	{"trigger-url", mirrorjob.ColumnTriggerURL, "URL", "where a trigger mirror is told of a release: an absolute http(s) `URL`",
		func(s *store.MirrorSettings, v string) error { s.TriggerURL = v; return nil }},
	{"max-concurrency", mirrorjob.ColumnMaxConcurrency, "N", "requests to the mirror at once: `N` from 1 to 64 (default: checks.per_mirror_concurrency)",
		func(s *store.MirrorSettings, v string) error {
			if v == "" {
				s.MaxConcurrency = 0
				return nil
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return errors.New("not a whole number")
			}
			if n == 0 {
				return errors.New("want 1 to 64 requests at once (--unset max-concurrency for the default)")
			}
			s.MaxConcurrency = n
			return nil
		}},
	{"max-rate", mirrorjob.ColumnMaxRate, "R", "requests to the mirror a second: `R` above 0 (default: checks.per_mirror_rate)",
		func(s *store.MirrorSettings, v string) error {
			if v == "" {
				s.MaxRate = 0
				return nil
			}
			r, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return errors.New("not a number")
			}
			if r == 0 {
				return errors.New("want a rate above 0 (--unset max-rate for the default)")
			}
			s.MaxRate = r
			return nil
		}},
	{"rsync-url", mirrorjob.ColumnRsyncURL, "URL", "rsync://HOST/MODULE/... `URL` of the mirror's tree, for light sweeps of trigger and passive mirrors",
		func(s *store.MirrorSettings, v string) error { s.RsyncURL = strings.TrimRight(v, "/"); return nil }},
	{"purge-method", mirrorjob.ColumnPurgeMethod, "METHOD", "HTTP `METHOD` that drops a file from the mirror's cache (PURGE), with --purge-url",
		func(s *store.MirrorSettings, v string) error { s.PurgeMethod = v; return nil }},
	{"purge-url", mirrorjob.ColumnPurgeURL, "TEMPLATE", "purge URL `TEMPLATE`: {url} is the file's URL on the mirror, {path} its path under the base URL",
		func(s *store.MirrorSettings, v string) error { s.PurgeURL = v; return nil }},
	{"contact", mirrorjob.ColumnContact, "ADDRESS", "the mirror admin's e-mail `ADDRESS`: mailed when the mirror goes down or comes back (notify.smtp)",
		func(s *store.MirrorSettings, v string) error { s.Contact = v; return nil }},
}

// settingByKey finds a setting by its flag or its column name.
func settingByKey(key string) (settingFlag, bool) {
	for _, f := range settingFlags {
		if key == f.flag || key == f.column {
			return f, true
		}
	}
	return settingFlag{}, false
}

func init() {
	register(&command{
		name:    "mirror list",
		summary: "List every bouncer mirror with its condition, prime mode, rating, region and own settings (sentry_mirror_settings).",
		formats: []string{"table", "json"},
		more: `A mirror without a region (geoip_mirror_region_map) or switched off
(mirror_mirrors.active) is never offered by the redirector: its REGION
column says so. SETTINGS lists what the mirror sets itself; the rest is
the configuration's defaults.
`,
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			return func(ctx context.Context, env *Env, c *common, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				return runMirrorList(ctx, env, c, "")
			}
		},
	})
	register(&command{
		name:    "mirror show",
		usage:   "NAME",
		summary: "Show a mirror: its settings, what sentry learned of it, its state and the reasons its last runs gave.",
		formats: []string{"table", "json"},
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			return func(ctx context.Context, env *Env, c *common, args []string) error {
				name, err := oneName(args)
				if err != nil {
					return err
				}
				return runMirrorList(ctx, env, c, name)
			}
		},
	})
	register(&command{
		name:    "mirror set",
		usage:   "NAME [--SETTING VALUE]... [--unset SETTING]...",
		summary: "Change a mirror's own settings (sentry_mirror_settings), refusing what a run could not use before anything is written.",
		formats: []string{"table", "json"},
		more: `Each --SETTING sets its column of sentry_mirror_settings; --unset SETTING
(repeatable; the flag's name or the column's: trigger-url, trigger_url)
sets it back to the default (a NULL column, pull for the prime mode).
A value is checked as runs check it: a trigger mirror needs a trigger URL
and a configured trigger secret, URLs must be absolute, the caps within
their bounds, the purge method and URL come together, the contact is one
plain address. A bad value is exit 1 naming it, and nothing is written.
`,
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			values := make([]*string, len(settingFlags))
			given := map[string]bool{}
			for i, f := range settingFlags {
				values[i] = new(string)
				fs.Func(f.flag, f.usage, func(v string) error {
					*values[i], given[f.flag] = v, true
					return nil
				})
			}
			var unset names
			fs.Var(&unset, "unset", "set `SETTING` back to its default (repeat for several)")
			return func(ctx context.Context, env *Env, c *common, args []string) error {
				name, err := oneName(args)
				if err != nil {
					return err
				}
				var changes []settingChange
				for i, f := range settingFlags {
					if given[f.flag] {
						changes = append(changes, settingChange{f: f, value: *values[i]})
					}
				}
				for _, key := range unset {
					f, ok := settingByKey(key)
					if !ok {
						return usageErrorf("--unset %q: not a setting (want one of %s)", key, settingNames())
					}
					if given[f.flag] {
						return usageErrorf("--%s is both set and unset", f.flag)
					}
					changes = append(changes, settingChange{f: f, unset: true})
				}
				if len(changes) == 0 {
					return usageErrorf("nothing to change: give a setting (--%s VALUE, ...) or --unset SETTING", settingFlags[0].flag)
				}
				return runMirrorSet(ctx, env, c, name, changes)
			}
		},
	})
	register(&command{
		name:    "mirror forget",
		usage:   "NAME",
		summary: "Forget what sentry learned of a mirror — how a prime fills its cache, how its server answers ranges — so that the next runs learn it again.",
		formats: []string{"table", "json"},
		more: `After the mirror's server or cache was reconfigured: the next sampled
prime learns again whether a one-byte request fills its cache
(sentry_mirror_priming), and the next sampled check how many ranges it
answers (sentry_mirror_ranges).
`,
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			return func(ctx context.Context, env *Env, c *common, args []string) error {
				name, err := oneName(args)
				if err != nil {
					return err
				}
				return runMirrorForget(ctx, env, c, name)
			}
		},
	})
}

// oneName is the one NAME argument of a mirror command.
func oneName(args []string) (string, error) {
	switch {
	case len(args) == 0:
		return "", usageErrorf("the mirror's NAME is required (mirror_mirrors.name)")
	case len(args) > 1:
		return "", usageErrorf("unexpected argument %q: one mirror at a time", args[1])
	}
	return args[0], nil
}

func settingNames() string {
	l := make([]string, len(settingFlags))
	for i, f := range settingFlags {
		l[i] = f.flag
	}
	return strings.Join(l, ", ")
}

// settingChange is one setting given to `sentry mirror set`.
type settingChange struct {
	f     settingFlag
	value string
	unset bool
}

// openMirrorStore loads the configuration and opens its database, whose
// schema must be current.
func openMirrorStore(ctx context.Context, env *Env, c *common) (*config.Config, *store.Store, error) {
	cfg, err := loadConfig(env, c)
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, cfg, 2)
	if err != nil {
		return nil, nil, err
	}
	if err := st.RequireSchema(ctx); err != nil {
		st.Close()
		return nil, nil, err
	}
	return cfg, st, nil
}

// ErrBadSetting is wrapped by `sentry mirror set`'s error for a value a
// run could not use (exit 1).
var ErrBadSetting = errors.New("refused, nothing written")

func runMirrorSet(ctx context.Context, env *Env, c *common, name string, changes []settingChange) error {
	cfg, st, err := openMirrorStore(ctx, env, c)
	if err != nil {
		return err
	}
	defer st.Close()
	before, after, err := st.SetMirrorSettings(ctx, name, func(base string, cur store.MirrorSettings) (store.MirrorSettings, error) {
		next := cur
		var bad []string
		for _, ch := range changes {
			v := ch.value
			if !ch.unset && strings.TrimSpace(v) == "" {
				bad = append(bad, fmt.Sprintf("--%s is empty (--unset %s sets it back to its default)", ch.f.flag, ch.f.flag))
				continue
			}
			if ch.unset && ch.f.column == mirrorjob.ColumnPrimeMode {
				v = store.ModePull
			}
			if err := ch.f.apply(&next, v); err != nil {
				bad = append(bad, fmt.Sprintf("--%s %q: %v", ch.f.flag, mirrorjob.SafeValue(v), err))
			}
		}
		if len(bad) == 0 {
			for _, p := range mirrorjob.CheckSettings(base, next, cfg.Trigger.Secret != "") {
				bad = append(bad, settingProblem(p, changes))
			}
		}
		if len(bad) > 0 {
			return cur, fmt.Errorf("mirror %s: %w:\n  %s", name, ErrBadSetting, strings.Join(bad, "\n  "))
		}
		return next, nil
	})
	if err != nil {
		return err
	}
	var changed []string
	for _, f := range settingFlags {
		if settingValue(before, f.column) != settingValue(after, f.column) {
			changed = append(changed, f.column)
		}
	}
	env.Logger.Info("mirror settings changed", "mirror", name, "settings", strings.Join(changed, ","))
	if c.format == "json" {
		return writeJSON(env.Stdout, struct {
			Mirror   string       `json:"mirror"`
			Changed  []string     `json:"changed"`
			Settings settingsJSON `json:"settings"`
		}{name, nonNilStrings(changed), settingsOf(cfg, after)})
	}
	if len(changed) == 0 {
		fmt.Fprintf(env.Stdout, "mirror %s: nothing changed\n", name)
	} else {
		fmt.Fprintf(env.Stdout, "mirror %s: set %s\n", name, strings.Join(changed, ", "))
	}
	writeSettingsTable(env.Stdout, cfg, after, report.TableWidth(c.wide))
	return nil
}

// settingProblem says a problem in the words of the command line: the
// flag that set the value, or the column that holds it already.
func settingProblem(p mirrorjob.SettingProblem, changes []settingChange) string {
	for _, ch := range changes {
		if ch.f.column == p.Column && !ch.unset {
			return fmt.Sprintf("--%s %q: %s", ch.f.flag, p.Value, p.Why)
		}
	}
	f, _ := settingByKey(p.Column)
	return fmt.Sprintf("%s (--%s, as stored): %s", strings.TrimSuffix(fmt.Sprintf("sentry_mirror_settings.%s %q", p.Column, p.Value), ` ""`), f.flag, p.Why)
}

func runMirrorForget(ctx context.Context, env *Env, c *common, name string) error {
	_, st, err := openMirrorStore(ctx, env, c)
	if err != nil {
		return err
	}
	defer st.Close()
	f, err := st.ForgetMirror(ctx, name)
	if err != nil {
		return err
	}
	env.Logger.Info("forgot what was learned of a mirror", "mirror", name, "priming", f.Priming, "ranges", f.Ranges)
	if c.format == "json" {
		return writeJSON(env.Stdout, struct {
			Mirror  string `json:"mirror"`
			Priming bool   `json:"forgot_priming"`
			Ranges  bool   `json:"forgot_ranges"`
		}{name, f.Priming, f.Ranges})
	}
	var what []string
	if f.Priming {
		what = append(what, "how a prime fills its cache")
	}
	if f.Ranges {
		what = append(what, "how its server answers ranges")
	}
	if len(what) == 0 {
		fmt.Fprintf(env.Stdout, "mirror %s: nothing learned to forget\n", name)
		return nil
	}
	fmt.Fprintf(env.Stdout, "mirror %s: forgot %s; the next runs learn it again\n", name, strings.Join(what, " and "))
	return nil
}

// mirrorJSON is a mirror as `sentry mirror list` and `show` give it in
// JSON.
type mirrorJSON struct {
	ID      int    `json:"id"`
	Name    string `json:"name"`
	BaseURL string `json:"baseurl"`
	Rating  int    `json:"rating"`
	// Active is the admin's switch (mirror_mirrors.active); Regions its
	// geoip_mirror_region_map regions; Offer why the redirector never
	// offers it ("" when it may).
	Active  bool   `json:"active"`
	Regions []int  `json:"regions"`
	Offer   string `json:"not_offered"`
	// Condition is its condition in every view (up, degraded, down,
	// unknown, disabled, maintenance), Why why it is not simply up.
	Condition  string     `json:"condition"`
	StateSince *time.Time `json:"state_since"`
	Why        string     `json:"why"`
	LastSweep  *time.Time `json:"last_sweep"`
	LastReason string     `json:"last_reason"`
	// Settings are its own (sentry_mirror_settings), Learned what sentry
	// learned of it.
	Settings settingsJSON `json:"settings"`
	Learned  learnedJSON  `json:"learned"`
	// Recent are the reasons its last runs gave (sentry_log, newest
	// first): `show` only.
	Recent []logJSON `json:"recent_runs,omitempty"`
}

// settingsJSON are a mirror's settings: null for a column left to the
// default, and the caps in effect.
type settingsJSON struct {
	PrimeMode      string   `json:"prime_mode"`
	TriggerURL     *string  `json:"trigger_url"`
	MaxConcurrency *int     `json:"max_concurrency"`
	MaxRate        *float64 `json:"max_rate"`
	RsyncURL       *string  `json:"rsync_url"`
	PurgeMethod    *string  `json:"purge_method"`
	PurgeURL       *string  `json:"purge_url"`
	Contact        *string  `json:"contact"`
	// Concurrency and Rate are the caps in effect: its own, or the
	// configured defaults.
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate"`
}

type learnedJSON struct {
	Priming *primingJSON `json:"priming"`
	Ranges  *rangesJSON  `json:"ranges"`
}

type primingJSON struct {
	PrimeBy   string    `json:"prime_by"`
	Reason    string    `json:"reason"`
	LearnedAt time.Time `json:"learned_at"`
}

type rangesJSON struct {
	MaxRanges *int      `json:"max_ranges"`
	InFull    bool      `json:"in_full"`
	Reason    string    `json:"reason"`
	LearnedAt time.Time `json:"learned_at"`
}

type logJSON struct {
	At     time.Time `json:"at"`
	Up     bool      `json:"up"`
	Reason string    `json:"reason"`
}

// recentRuns is how many sentry_log lines `sentry mirror show` gives.
const recentRuns = 10

func runMirrorList(ctx context.Context, env *Env, c *common, name string) error {
	cfg, st, err := openMirrorStore(ctx, env, c)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := st.MirrorRecords(ctx, name)
	if err != nil {
		return err
	}
	states, err := report.New(st.Pool(), nil).States(ctx)
	if err != nil {
		return err
	}
	byID := map[int]report.MirrorRow{}
	for _, s := range states {
		byID[s.ID] = s
	}
	out := make([]mirrorJSON, len(recs))
	for i, r := range recs {
		out[i] = mirrorOf(cfg, r, byID[r.ID])
	}
	if name != "" {
		m := &out[0]
		lines, err := st.MirrorLog(ctx, m.ID, recentRuns)
		if err != nil {
			return err
		}
		m.Recent = []logJSON{}
		for _, l := range lines {
			m.Recent = append(m.Recent, logJSON{At: l.LogDate, Up: l.Up, Reason: l.Reason})
		}
		if c.format == "json" {
			return writeJSON(env.Stdout, m)
		}
		return writeMirrorShow(env.Stdout, cfg, recs[0], m, time.Now(), report.TableWidth(c.wide))
	}
	if c.format == "json" {
		return writeJSON(env.Stdout, struct {
			Mirrors []mirrorJSON `json:"mirrors"`
		}{out})
	}
	return writeMirrorList(env.Stdout, out, recs, c.wide)
}

func mirrorOf(cfg *config.Config, r store.MirrorRecord, s report.MirrorRow) mirrorJSON {
	m := mirrorJSON{ID: r.ID, Name: r.Name, BaseURL: r.BaseURL, Rating: r.Rating, Active: r.Active, Regions: r.Regions,
		Offer:     neverOffered(r),
		Condition: s.Condition(), StateSince: s.StateSince, Why: s.Why(), LastSweep: s.LastSweep, LastReason: s.LastReason,
		Settings: settingsOf(cfg, r.Settings)}
	if m.Regions == nil {
		m.Regions = []int{}
	}
	if m.Condition == "" {
		m.Condition = "unknown"
	}
	if p := r.Priming; p != nil {
		m.Learned.Priming = &primingJSON{PrimeBy: p.By, Reason: p.Reason, LearnedAt: p.LearnedAt}
	}
	if w := r.Ranges; w != nil {
		rj := &rangesJSON{InFull: w.Way.InFull, Reason: w.Reason, LearnedAt: w.LearnedAt}
		if !w.Way.InFull {
			rj.MaxRanges = &w.Way.MaxRanges
		}
		m.Learned.Ranges = rj
	}
	return m
}

func settingsOf(cfg *config.Config, s store.MirrorSettings) settingsJSON {
	str := func(v string) *string {
		if v == "" {
			return nil
		}
		v = mirrorjob.SafeValue(v)
		return &v
	}
	out := settingsJSON{PrimeMode: s.Mode, TriggerURL: str(s.TriggerURL), RsyncURL: str(s.RsyncURL), PurgeMethod: str(s.PurgeMethod),
		PurgeURL: str(s.PurgeURL), Contact: str(s.Contact),
		Concurrency: cfg.MirrorConcurrency(s.MaxConcurrency), Rate: cfg.MirrorRate(s.MaxRate)}
	if out.PrimeMode == "" {
		out.PrimeMode = store.ModePull
	}
	if s.MaxConcurrency != 0 {
		out.MaxConcurrency = &s.MaxConcurrency
	}
	if s.MaxRate != 0 {
		r := s.MaxRate
		out.MaxRate = &r
	}
	return out
}

// settingValue is a setting's value as the tables show it ("" for the
// default).
func settingValue(s store.MirrorSettings, column string) string {
	switch column {
	case mirrorjob.ColumnPrimeMode:
		if s.Mode == "" {
			return store.ModePull
		}
		return s.Mode
	case mirrorjob.ColumnTriggerURL:
		return mirrorjob.SafeValue(s.TriggerURL)
	case mirrorjob.ColumnMaxConcurrency:
		if s.MaxConcurrency == 0 {
			return ""
		}
		return strconv.Itoa(s.MaxConcurrency)
	case mirrorjob.ColumnMaxRate:
		if s.MaxRate == 0 {
			return ""
		}
		return strconv.FormatFloat(s.MaxRate, 'g', -1, 64)
	case mirrorjob.ColumnRsyncURL:
		return mirrorjob.SafeValue(s.RsyncURL)
	case mirrorjob.ColumnPurgeMethod:
		return s.PurgeMethod
	case mirrorjob.ColumnPurgeURL:
		return mirrorjob.SafeValue(s.PurgeURL)
	case mirrorjob.ColumnContact:
		return s.Contact
	}
	return ""
}

// cell is text from the database fit for a table cell: one line, at most
// n columns.
func cell(s string, n int) string {
	return humanize.Clip(strings.Join(strings.Fields(s), " "), n)
}

// writeSettingsTable writes a mirror's settings, one a line, the default
// in effect where it sets none.
func writeSettingsTable(w io.Writer, cfg *config.Config, s store.MirrorSettings, width int) {
	defaults := map[string]string{
		mirrorjob.ColumnMaxConcurrency: fmt.Sprintf("(default: %d, checks.per_mirror_concurrency)", cfg.Checks.PerMirrorConcurrency),
		mirrorjob.ColumnMaxRate:        fmt.Sprintf("(default: %g/s, checks.per_mirror_rate)", cfg.Checks.PerMirrorRate),
	}
	for _, f := range settingFlags {
		v := settingValue(s, f.column)
		switch {
		case v == "" && defaults[f.column] != "":
			v = defaults[f.column]
		case v == "":
			v = "(none)"
		case f.column == mirrorjob.ColumnMaxRate:
			v += "/s"
		}
		fmt.Fprintf(w, "  %-16s %s\n", f.column, cell(v, width-19))
	}
}

// neverOffered says why the redirector never offers the mirror, by the
// rule the reports follow (decide.NeverOffered), "" when it may.
func neverOffered(r store.MirrorRecord) string {
	return decide.NeverOffered(r.Active, r.HasRegion, r.BaseURL).Explain(r.BaseURL, false)
}

// regionWords says where the redirector may offer a mirror: its regions,
// or why never.
func regionWords(m mirrorJSON) string {
	if m.Offer != "" && m.Offer != string(decide.NoRegion) {
		return "never offered: " + m.Offer
	}
	if m.Offer == string(decide.NoRegion) {
		return "none: never offered"
	}
	if len(m.Regions) == 0 {
		return "(null)" // a region row naming no region: joined all the same
	}
	ids := make([]string, len(m.Regions))
	for i, r := range m.Regions {
		ids[i] = strconv.Itoa(r)
	}
	return strings.Join(ids, ",")
}

// compactSettings lists a mirror's own settings in a line: those it sets,
// beside the prime mode.
func compactSettings(s store.MirrorSettings) string {
	var parts []string
	for _, f := range settingFlags[1:] {
		if v := settingValue(s, f.column); v != "" {
			switch f.column {
			case mirrorjob.ColumnMaxConcurrency:
				v = "conc " + v
			case mirrorjob.ColumnMaxRate:
				v = "rate " + v + "/s"
			case mirrorjob.ColumnPurgeMethod:
				v = "purge " + v
			case mirrorjob.ColumnPurgeURL:
				continue // with the method
			case mirrorjob.ColumnRsyncURL:
				v = "rsync " + v
			case mirrorjob.ColumnTriggerURL:
				v = "trigger " + v
			}
			parts = append(parts, v)
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

func writeMirrorList(w io.Writer, ms []mirrorJSON, recs []store.MirrorRecord, wide bool) error {
	width := report.TableWidth(wide)
	nw := nameColumn(wide, ms, func(m mirrorJSON) string { return m.Name })
	row := "%-" + strconv.Itoa(nw) + "s %-11s %-7s %6s %-7s %s\n"
	var b strings.Builder
	fmt.Fprintf(&b, row, "MIRROR", "STATE", "MODE", "RATING", "REGION", "SETTINGS")
	head := utf8Len(fmt.Sprintf(row, "", "", "", "", "", ""))
	for i, m := range ms {
		region := regionWords(m)
		if len(region) > 7 && m.Offer != "" {
			region = "-" // said under the row
		}
		fmt.Fprintf(&b, row, cell(m.Name, nw), m.Condition, m.Settings.PrimeMode, strconv.Itoa(m.Rating), cell(region, 7),
			cell(compactSettings(recs[i].Settings), max(width-head, 10)))
		if m.Offer != "" {
			b.WriteString("    " + cell("never offered: "+m.Offer, width-4) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func utf8Len(s string) int { return len([]rune(strings.TrimSuffix(s, "\n"))) }

func writeMirrorShow(w io.Writer, cfg *config.Config, r store.MirrorRecord, m *mirrorJSON, now time.Time, width int) error {
	var b strings.Builder
	b.WriteString(cell("mirror "+m.Name, width) + "\n" + cell(m.BaseURL, width) + "\n")
	switch1 := "active"
	if !m.Active {
		switch1 = "switched off (mirror_mirrors.active)"
	}
	b.WriteString(cell(fmt.Sprintf("id %d, rating %d, %s, region %s", m.ID, m.Rating, switch1, regionWords(*m)), width) + "\n")
	state := "state: " + m.Condition
	if m.StateSince != nil {
		state += fmt.Sprintf(" since %s (%s)", m.StateSince.UTC().Format("2006-01-02 15:04"), humanize.Ago(now.Sub(*m.StateSince)))
	}
	b.WriteString(state + "\n")
	if m.Why != "" {
		b.WriteString(humanize.Wrap("why: "+strings.Join(strings.Fields(m.Why), " "), width, "  ") + "\n")
	}
	if m.LastSweep != nil {
		b.WriteString(humanize.Wrap(fmt.Sprintf("last sweep %s: %s", humanize.Ago(now.Sub(*m.LastSweep)),
			strings.Join(strings.Fields(m.LastReason), " ")), width, "  ") + "\n")
	}
	b.WriteString("\nsettings (sentry_mirror_settings; `sentry mirror set` changes them):\n")
	writeSettingsTable(&b, cfg, r.Settings, width)
	b.WriteString("\nlearned (`sentry mirror forget` forgets it):\n")
	label := func(l string) string { return fmt.Sprintf("  %-16s ", l) }
	if p := m.Learned.Priming; p != nil {
		b.WriteString(label("priming") + cell(fmt.Sprintf("%s, %s: %s", p.PrimeBy, p.LearnedAt.UTC().Format("2006-01-02 15:04"), p.Reason),
			width-19) + "\n")
	} else {
		b.WriteString(label("priming") + "(nothing: the next sampled prime learns it)\n")
	}
	if rw := r.Ranges; rw != nil {
		b.WriteString(label("ranges") + cell(fmt.Sprintf("%s, %s: %s", store.RangeWayWords(rw.Way),
			rw.LearnedAt.UTC().Format("2006-01-02 15:04"), rw.Reason), width-19) + "\n")
	} else {
		b.WriteString(label("ranges") + "(nothing: every range in one request)\n")
	}
	fmt.Fprintf(&b, "\nrecent runs (sentry_log, newest first): %d\n", len(m.Recent))
	for _, l := range m.Recent {
		up := "up  "
		if !l.Up {
			up = "down"
		}
		head := fmt.Sprintf("  %s %s ", l.At.UTC().Format("2006-01-02 15:04"), up)
		b.WriteString(head + cell(l.Reason, width-utf8Len(head)) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func nonNilStrings(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
