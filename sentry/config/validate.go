package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/mirrorsentry/sentry/sentry/internal/dburl"
)

// Validate checks every key and returns all problems at once, joined, each
// a sentence naming its key. It changes nothing.
func (c *Config) Validate() error {
	return errors.Join(c.problems()...)
}

// problems are Validate's errors, one per problem, in the order of the
// sections of the file; those about a value from the environment are
// envProblems. Each section checks its own keys.
func (c *Config) problems() []error {
	p := &problemList{c: c}
	c.Database.problems(p)
	c.Master.problems(p)
	c.Releases.problems(p)
	c.HTTP.problems(p)
	c.Schedule.problems(p)
	c.Checks.problems(p)
	c.Prime.problems(p)
	c.Guard.problems(p)
	c.State.problems(p)
	c.Cluster.problems(p)
	c.Retention.problems(p)
	c.Sweep.problems(p)
	c.Verify.problems(p)
	c.Hook.problems(p)
	c.Trigger.problems(p)
	c.Notify.problems(p)
	c.topProblems(p)
	c.adminProblems(p)
	return p.errs
}

// adminProblems are the problems of the keys that keep mirror admins in
// the loop: certificates, address families, the status page's public
// address, mail.
func (c *Config) adminProblems(p *problemList) {
	c.Notify.SMTP.passwordProblems(p)
	c.Checks.certProblems(p)
	c.Checks.familyProblems(p)
	c.State.familyPolicyProblems(p)
	if u := c.HTTP.PublicURL; u != "" {
		if err := checkHTTPURL(u); err != nil {
			p.add("http.public_url %w", err)
		}
	}
	c.Notify.SMTP.problems(p, len(c.Notify.DigestTo) > 0)
	for i, a := range c.Notify.DigestTo {
		if err := CheckAddress(a); err != nil {
			p.add("notify.digest_to[%d] %v", i, err)
		}
	}
}

// problemList collects the problems of a configuration.
type problemList struct {
	c    *Config // for the source of a key (Config.Source)
	errs []error
}

// add is a problem of a value.
func (p *problemList) add(format string, a ...any) {
	p.errs = append(p.errs, fmt.Errorf(format, a...))
}

// secret is a problem of a key the environment may set, naming its
// source; the value itself is never repeated.
func (p *problemList) secret(key, format string, a ...any) {
	err := fmt.Errorf("%s "+format, append([]any{p.c.Source(key)}, a...)...)
	if p.c.Source(key) != key {
		err = envProblem{err}
	}
	p.errs = append(p.errs, err)
}

// positive is a problem when the duration of key is not above zero.
func (p *problemList) positive(key string, d Duration) {
	if d <= 0 {
		p.add("%s must be a positive duration, not %s", key, d)
	}
}

// shortSecret is a problem when the secret of key is set but shorter than
// 16 bytes.
func (p *problemList) shortSecret(key, value string) {
	if n := len(value); n > 0 && n < 16 {
		p.secret(key, "is %d bytes, want at least 16 (generate one with `openssl rand -hex 32`)", n)
	}
}

func (d DatabaseConfig) problems(p *problemList) {
	if d.URL == "" {
		p.add("database.url is required (or set %s)", EnvDatabaseURL)
	} else if err := dburl.Check(d.URL); errors.Is(err, dburl.ErrNeedsEncoding) {
		p.secret("database.url", "is not usable: %v", err)
	} else if err != nil {
		p.secret("database.url", "is not a valid PostgreSQL URL or key=value string")
	}
	if d.MaxConns < 2 || d.MaxConns > 1000 {
		p.add("database.max_conns must be between 2 and 1000, not %d", d.MaxConns)
	}
}

func (m MasterConfig) problems(p *problemList) {
	if m.URL == "" {
		p.add("master.url is required")
	} else if err := checkHTTPURL(m.URL); err != nil {
		p.add("master.url %w", err)
	}
}

func (r ReleasesConfig) problems(p *problemList) {
	r.placeProblems(p)
	if len(r.Products) == 0 {
		p.add("releases.products needs at least one pattern, for example \"Firefox-{release}\"")
	}
	for i, pat := range r.Products {
		if !strings.Contains(pat, "{release}") {
			p.add("releases.products[%d] %q must contain {release}", i, pat)
		}
	}
	if len(r.DefaultLangs) == 0 {
		p.add("releases.default_langs needs at least one language, for example en-US")
	}
	for i, l := range r.DefaultLangs {
		if l == "" || strings.ContainsAny(l, "/\\ ") || l == "." || l == ".." {
			p.add("releases.default_langs[%d] %q is not a language code", i, l)
		}
	}
	if r.MaxManifestBytes < 1024 {
		p.add("releases.max_manifest_bytes must be at least 1024, not %d", r.MaxManifestBytes)
	}
	if r.MaxManifestEntries < 1 || r.MaxManifestEntries > 10_000_000 {
		p.add("releases.max_manifest_entries must be between 1 and 10000000, not %d", r.MaxManifestEntries)
	}
	r.signatureProblems(p)
	r.aliasProblems(p)
}

// aliasProblems are those of releases.aliases and releases.promote_at.
func (r ReleasesConfig) aliasProblems(p *problemList) {
	if !(r.PromoteAt > 0 && r.PromoteAt <= 1) {
		p.add("releases.promote_at must be a share above 0 and at most 1 (0.8: 80%% of the eligible capacity), not %v", r.PromoteAt)
	}
	names := make([]string, 0, len(r.Aliases))
	for a := range r.Aliases {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, a := range names {
		pat := r.Aliases[a]
		switch {
		case strings.TrimSpace(a) == "" || len(a) > 255 || strings.TrimSpace(a) != a:
			p.add("releases.aliases: %q is not an alias name (mirror_aliases.alias: 1 to 255 characters, no surrounding spaces)", a)
		case strings.Count(pat, "{release}") != 1:
			p.add("releases.aliases.%s %q must contain {release} once", a, pat)
		case !slices.Contains(r.Products, pat):
			p.add("releases.aliases.%s %q must be one of releases.products (%s): sentry marks only those products' locations",
				a, pat, strings.Join(r.Products, ", "))
		}
	}
}

// placeProblems are those of where a release is: its directory and its
// manifest.
func (r ReleasesConfig) placeProblems(p *problemList) {
	switch {
	case r.Dir == "":
		p.add("releases.dir is required, for example \"/firefox/releases/{release}/\"")
	case !strings.Contains(r.Dir, "{release}"):
		p.add("releases.dir %q must contain {release}", r.Dir)
	case !strings.HasPrefix(r.Dir, "/"):
		p.add("releases.dir %q must start with /", r.Dir)
	}
	switch {
	case r.Manifest == "":
		p.add("releases.manifest must not be empty")
	case strings.Contains(r.Manifest, "://"):
		if err := checkHTTPURL(strings.ReplaceAll(r.Manifest, "{release}", "x")); err != nil {
			p.add("releases.manifest %w", err)
		}
	case strings.HasPrefix(r.Manifest, "/") || hasDotDot(r.Manifest):
		p.add("releases.manifest %q must be a name under the release directory or a full URL", r.Manifest)
	}
}

func (h HTTPConfig) problems(p *problemList) {
	if h.DBConns < 1 || h.DBConns > 64 {
		p.add("http.db_conns must be between 1 and 64, not %d", h.DBConns)
	}
	if _, _, err := net.SplitHostPort(h.Listen); err != nil {
		p.add("http.listen %q is not a host:port address", h.Listen)
	}
}

func (s ScheduleConfig) problems(p *problemList) {
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	if _, err := parser.Parse(s.Sweep); err != nil {
		p.add("schedule.sweep %q is not a cron schedule: %v", s.Sweep, err)
	}
	if _, err := parser.Parse(s.DeepSweep); err != nil {
		p.add("schedule.deep_sweep %q is not a cron schedule: %v", s.DeepSweep, err)
	}
}

func (c ChecksConfig) problems(p *problemList) {
	if strings.TrimSpace(c.Contact) == "" {
		p.add("checks.contact is required: a URL or e-mail address put in the User-Agent so mirror admins can reach you")
	} else if strings.ContainsAny(c.Contact, "()\r\n") {
		p.add("checks.contact %q must not contain parentheses or line breaks", c.Contact)
	}
	if c.Concurrency < 1 || c.Concurrency > 10000 {
		p.add("checks.concurrency must be between 1 and 10000, not %d", c.Concurrency)
	}
	if c.PerMirrorConcurrency < 1 || c.PerMirrorConcurrency > 64 {
		p.add("checks.per_mirror_concurrency must be between 1 and 64, not %d", c.PerMirrorConcurrency)
	}
	if !(c.PerMirrorRate > 0 && c.PerMirrorRate <= 100_000) {
		p.add("checks.per_mirror_rate must be a number of requests per second above 0 and at most 100000, not %v", c.PerMirrorRate)
	}
	p.positive("checks.connect_timeout", c.ConnectTimeout)
	p.positive("checks.header_timeout", c.HeaderTimeout)
	p.positive("checks.body_idle_timeout", c.BodyIdleTimeout)
	if c.MinRate < 1<<10 || c.MinRate > 1<<30 {
		p.add("checks.min_rate must be a rate in bytes a second from 1KiB to 1GiB, not %s", c.MinRate)
	}
	p.positive("checks.retry_wait_min", c.RetryWaitMin)
	p.positive("checks.retry_wait_max", c.RetryWaitMax)
	if c.RetryWaitMax < c.RetryWaitMin {
		p.add("checks.retry_wait_max (%s) must not be less than checks.retry_wait_min (%s)", c.RetryWaitMax, c.RetryWaitMin)
	}
	if c.Retries < 0 || c.Retries > 10 {
		p.add("checks.retries must be between 0 and 10, not %d", c.Retries)
	}
	if a := c.SourceAddress; a != "" {
		if _, err := netip.ParseAddr(a); err != nil {
			p.add("checks.source_address %q is not an IP address (a local address of this host, without a port)", a)
		}
	}
}

func (pc PrimeConfig) problems(p *problemList) {
	p.positive("prime.deadline", pc.Deadline)
	p.positive("prime.poll_interval", pc.PollInterval)
	p.positive("prime.poll_max", pc.PollMax)
	if pc.PollMax < pc.PollInterval {
		p.add("prime.poll_max (%s) must not be less than prime.poll_interval (%s)", pc.PollMax, pc.PollInterval)
	}
}

func (g GuardConfig) problems(p *problemList) {
	if !(g.MaxDownFraction > 0 && g.MaxDownFraction <= 1) {
		p.add("guard.max_down_fraction must be in (0, 1], not %v", g.MaxDownFraction)
	}
}

func (s StateConfig) problems(p *problemList) {
	if s.DownAfter < 1 {
		p.add("state.down_after must be at least 1, not %d", s.DownAfter)
	}
	if s.UpAfter < 1 {
		p.add("state.up_after must be at least 1, not %d", s.UpAfter)
	}
	if s.Quorum < 0 || s.Quorum > 64 {
		p.add("state.quorum must be 0 (a majority of the vantage points seen in the last hour) or a count of vantage points up to 64, not %d", s.Quorum)
	}
}

func (c ClusterConfig) problems(p *problemList) {
	if c.Lease.D() < 2*time.Second || c.Lease.D() > time.Hour {
		p.add("cluster.lease must be between 2s and 1h, not %s", c.Lease)
	}
	if c.Poll.D() < 100*time.Millisecond || c.Poll > c.Lease {
		p.add("cluster.poll must be at least 100ms and at most cluster.lease, not %s", c.Poll)
	}
}

func (r RetentionConfig) problems(p *problemList) {
	if r.Checks < Duration(time.Hour) {
		p.add("retention.checks must be at least 1h, not %s", r.Checks)
	}
	if r.Rollup < r.Checks {
		p.add("retention.rollup (%s) must not be shorter than retention.checks (%s): reports count from it", r.Rollup, r.Checks)
	}
	if r.SentryLog != 0 && r.SentryLog < Duration(24*time.Hour) {
		p.add("retention.sentry_log must be 0 (keep every row) or at least 1d, not %s", r.SentryLog)
	}
}

func (s SweepConfig) problems(p *problemList) {
	if s.CatchUpBytes.Bytes() < 1<<20 {
		p.add("sweep.catch_up_bytes must be at least 1MiB, not %s", s.CatchUpBytes)
	}
	if s.DeepPeriod < Duration(time.Hour) {
		p.add("sweep.deep_period must be at least 1h, not %s", s.DeepPeriod)
	}
}

func (v VerifyConfig) problems(p *problemList) {
	if v.Mode != VerifyFull && v.Mode != VerifySampled {
		p.add("verify.mode must be %q or %q, not %q", VerifyFull, VerifySampled, v.Mode)
	}
	if v.BlockSize < 1<<10 || v.BlockSize > 64<<20 {
		p.add("verify.block_size must be between 1KiB and 64MiB, not %s", v.BlockSize)
	}
	if v.SampleBlocks < 2 || v.SampleBlocks > 4096 {
		p.add("verify.sample_blocks must be between 2 (the first and the last block) and 4096, not %d", v.SampleBlocks)
	}
}

func (h HookConfig) problems(p *problemList) {
	p.positive("hook.replay_window", h.ReplayWindow)
	p.shortSecret("hook.secret", h.Secret)
}

func (t TriggerConfig) problems(p *problemList) {
	p.shortSecret("trigger.secret", t.Secret)
}

// problems are those of the webhooks; the mail's are with the admins'
// (adminProblems).
func (n NotifyConfig) problems(p *problemList) {
	for i, w := range n.Webhooks {
		// The URL is not repeated: webhook URLs often hold a token.
		if u, err := url.Parse(w); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("notify.webhooks[%d] must be an absolute http:// or https:// URL", i)
		}
	}
	p.shortSecret("notify.secret", n.Secret)
	if n.Retries < 0 || n.Retries > 20 {
		p.add("notify.retries must be between 0 and 20, not %d", n.Retries)
	}
	p.positive("notify.retry_wait_max", n.RetryWaitMax)
	p.positive("notify.timeout", n.Timeout)
}

// topProblems are those of the keys outside every section.
func (c *Config) topProblems(p *problemList) {
	if c.Vantage == "" || len(c.Vantage) > 64 {
		p.add("vantage must be a name of 1 to 64 characters")
	}
	if c.ShutdownGrace < 0 {
		p.add("shutdown_grace must not be negative, not %s", c.ShutdownGrace)
	}
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q must be an absolute http:// or https:// URL", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not carry credentials", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not have a query or fragment", s)
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}
