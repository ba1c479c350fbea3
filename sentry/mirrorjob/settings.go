package mirrorjob

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Columns of sentry_mirror_settings, in the order problems are listed.
const (
	ColumnPrimeMode      = "prime_mode"
	ColumnTriggerURL     = "trigger_url"
	ColumnMaxConcurrency = "max_concurrency"
	ColumnMaxRate        = "max_rate"
	ColumnRsyncURL       = "rsync_url"
	ColumnPurgeMethod    = "purge_method"
	ColumnPurgeURL       = "purge_url"
	ColumnContact        = "contact"
)

// MaxRate bounds a mirror's own request rate, as checks.per_mirror_rate
// is bounded.
const MaxRate = 100_000

// ErrNoTriggerSecret is what a SettingProblem of a trigger mirror without
// a configured trigger secret is (errors.Is): every run refuses to start
// (CheckSettings of package sentry).
var ErrNoTriggerSecret = errors.New("a trigger mirror, and no trigger secret configured")

// SettingProblem is a mirror setting a run cannot use: the column of
// sentry_mirror_settings, its value as it may be shown (SafeValue: a URL
// without what may be a secret), and why.
type SettingProblem struct {
	Column, Value, Why string
	err                error // a sentinel callers branch on, nil for none
}

// Is reports whether the problem is target (ErrNoTriggerSecret).
func (p SettingProblem) Is(target error) bool { return p.err != nil && p.err == target }

func (p SettingProblem) Error() string {
	if p.Value == "" {
		return fmt.Sprintf("sentry_mirror_settings.%s: %s", p.Column, p.Why)
	}
	return fmt.Sprintf("sentry_mirror_settings.%s %q: %s", p.Column, p.Value, p.Why)
}

// CheckSettings finds what a run would stumble on in the settings s of a
// mirror whose base URL is base, with a trigger secret configured or not
// (secret): the rules the runs apply where they use each setting — the
// prime mode as primes read it (primer.ParseMode), a trigger mirror's URL
// and secret as a prime needs them (primer.CheckTriggerURL, and
// CheckSettings of package sentry, which refuses to start a run with a
// trigger mirror and no secret), the caps within the bounds the settings
// table and the primer hold them to, the rsync URL as a sweep lists it
// (checks.CheckRsyncURL), the purge settings as a sweep purges
// (primer.Purge.Check) and the contact as mail is addressed
// (config.CheckAddress). `sentry mirror set` refuses a change with any
// problem before writing it; none: every setting is usable.
func CheckSettings(base string, s store.MirrorSettings, secret bool) []SettingProblem {
	var out []SettingProblem
	add := func(col, value, why string) {
		out = append(out, SettingProblem{Column: col, Value: value, Why: why})
	}
	mode, err := primer.ParseMode(s.Mode)
	switch {
	case err != nil:
		add(ColumnPrimeMode, s.Mode, "want pull, trigger or passive")
	case mode == primer.ModeTrigger && !secret:
		add(ColumnPrimeMode, s.Mode, fmt.Sprintf("a trigger mirror needs a trigger secret (trigger.secret, or %s), "+
			"and none is configured: every run would refuse to start", config.EnvTriggerSecret))
		out[len(out)-1].err = ErrNoTriggerSecret
	}
	if err := primer.CheckTriggerURL(mode, s.TriggerURL); err != nil {
		add(ColumnTriggerURL, SafeValue(s.TriggerURL), err.Error())
	}
	if c := s.MaxConcurrency; c != 0 && (c < 1 || c > primer.MaxConcurrency) {
		add(ColumnMaxConcurrency, fmt.Sprint(c), fmt.Sprintf("want 1 to %d requests at once", primer.MaxConcurrency))
	}
	if r := s.MaxRate; r != 0 && (!(r > 0) || math.IsInf(r, 0) || r > MaxRate) {
		add(ColumnMaxRate, fmt.Sprint(r), fmt.Sprintf("want a number of requests per second above 0 and at most %d", MaxRate))
	}
	if s.RsyncURL != "" {
		if err := checks.CheckRsyncURL(s.RsyncURL); err != nil {
			add(ColumnRsyncURL, SafeValue(s.RsyncURL), err.Error())
		}
	}
	var pe *primer.PurgeError
	if err := (primer.Purge{Method: s.PurgeMethod, URL: s.PurgeURL}).Check(base); errors.As(err, &pe) {
		value := s.PurgeMethod
		if pe.Setting == ColumnPurgeURL {
			value = SafeValue(s.PurgeURL)
		}
		add(pe.Setting, value, pe.Why)
	}
	if s.Contact != "" {
		if err := config.CheckAddress(s.Contact); err != nil {
			add(ColumnContact, s.Contact, strings.TrimPrefix(err.Error(), strconv.Quote(s.Contact)+" "))
		}
	}
	return out
}

// SafeValue is a setting's URL as it may be shown: its user's password
// and its query's values hidden (either may be a token); a value that
// is no URL is shown as it is.
func SafeValue(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
