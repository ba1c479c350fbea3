// Package config is sentry's configuration: the YAML file, its defaults,
// the environment overrides of secrets, and the checks that make a bad
// value a clear error naming its key.
//
// config.go holds the keys (Config and its sections, each field's
// comment saying what it does and its default) and Default, with the
// values derived from them (UserAgent, MirrorRate, ReleaseDir...);
// load.go reads the file and the environment (Load, Parse); validate.go
// checks every section (Validate), each section its own keys, and those
// that keep mirror admins in the loop in files of their own: certs.go
// (the certificates), families.go (address families and
// state.family_policy), mail.go (the relay and the addresses); secrets.go
// lists the secrets no output may show. A problem names its key, or the
// environment variable the value came from, and never repeats a secret.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/primer"
)

// ErrInvalid is wrapped by every error of Load: the configuration file could
// not be read, decoded or validated. The command line maps it to exit code 1.
var ErrInvalid = errors.New("configuration error")

// Environment variables that override secrets of the configuration file, so
// that the file itself can be world-readable.
const (
	EnvDatabaseURL   = "SENTRY_DATABASE_URL"
	EnvHookSecret    = "SENTRY_HOOK_SECRET"
	EnvTriggerSecret = "SENTRY_TRIGGER_SECRET"
	EnvNotifySecret  = "SENTRY_NOTIFY_SECRET"
	EnvSMTPPassword  = "SENTRY_SMTP_PASSWORD"
)

// Config is sentry's whole configuration. Load fills it from a YAML file
// over the defaults of Default, then from the environment, then
// validates it. The YAML keys are a contract (docs/CONTRACTS.md).
type Config struct {
	Database DatabaseConfig `yaml:"database"`
	Master   MasterConfig   `yaml:"master"`
	Releases ReleasesConfig `yaml:"releases"`
	HTTP     HTTPConfig     `yaml:"http"`
	Schedule ScheduleConfig `yaml:"schedule"`
	Checks   ChecksConfig   `yaml:"checks"`
	Prime    PrimeConfig    `yaml:"prime"`
	Guard    GuardConfig    `yaml:"guard"`
	State    StateConfig    `yaml:"state"`
	Sweep    SweepConfig    `yaml:"sweep"`
	Verify   VerifyConfig   `yaml:"verify"`
	Hook     HookConfig     `yaml:"hook"`
	Trigger  TriggerConfig  `yaml:"trigger"`
	Notify   NotifyConfig   `yaml:"notify"`
	Cluster  ClusterConfig  `yaml:"cluster"`
	// Retention bounds how long sentry keeps its own records.
	Retention RetentionConfig `yaml:"retention"`

	// Vantage names the place this instance checks from (a region, say).
	// It is recorded with every check. Default: "default".
	Vantage string `yaml:"vantage"`

	// ShutdownGrace is how long `sentry run` lets running checks finish
	// after SIGTERM or SIGINT before it cancels them. Default: 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`

	// fromEnv maps the keys whose value came from the environment to the
	// variable it came from, so that an error about such a value names the
	// variable, not the file.
	fromEnv map[string]string
}

// DatabaseConfig locates the bouncer database.
type DatabaseConfig struct {
	// URL is a PostgreSQL connection URL or key=value DSN. Required, here or
	// in SENTRY_DATABASE_URL (which wins). It may hold a password; sentry
	// never prints it.
	URL string `yaml:"url"`
	// MaxConns caps the connection pool. Default: 8.
	MaxConns int `yaml:"max_conns"`
}

// MasterConfig locates the staging master.
type MasterConfig struct {
	// URL is the master's counterpart of a mirror baseurl: the release
	// directory is resolved under it. Required; http or https; a trailing
	// slash is removed.
	URL string `yaml:"url"`
}

// ReleasesConfig says where a release lives and which bouncer products it is.
type ReleasesConfig struct {
	// Dir is the release directory, under master.url and under every mirror
	// baseurl, with the placeholder {release}. Required.
	Dir string `yaml:"dir"`
	// Manifest is the checksum manifest: a file name under the release
	// directory, or a full http(s) URL template with {release}.
	// Default: "SHA256SUMS".
	Manifest string `yaml:"manifest"`
	// Products are bouncer product name patterns with {release}, for
	// example "Firefox-{release}". At least one is required.
	Products []string `yaml:"products"`
	// DefaultLangs expand ":lang" in location paths for products that have
	// no mirror_product_langs rows. Default: [en-US].
	DefaultLangs []string `yaml:"default_langs"`
	// MaxManifestBytes bounds the manifest download. Default: 64 MiB.
	MaxManifestBytes int64 `yaml:"max_manifest_bytes"`
	// MaxManifestEntries bounds the files a manifest may name: a manifest
	// naming more is unusable. Default: 100000.
	MaxManifestEntries int `yaml:"max_manifest_entries"`
	// Signature is where the manifest's OpenPGP signature is: a detached
	// signature's name beside the manifest ("SHA256SUMS.asc"), or a full
	// http(s) URL template with {release}; or "clearsigned" for a
	// manifest that is itself a clearsigned message. Default: none (the
	// manifest is trusted as the master serves it). Requires Keyring.
	Signature string `yaml:"signature"`
	// Keyring is a file of ASCII-armoured OpenPGP public keys (gpg
	// --armor --export KEYID): the keys a manifest may be signed by.
	// Required with Signature, and only with it.
	Keyring string `yaml:"keyring"`
	// Aliases map bouncer aliases (mirror_aliases.alias, such as
	// firefox-latest) to the product pattern of Products each is to name
	// ("Firefox-{release}"): sentry moves an alias to a release's product
	// (package promote) once every location of it has reached PromoteAt of
	// its eligible capacity. Default: none, no alias is moved.
	Aliases map[string]string `yaml:"aliases"`
	// PromoteAt is the rating-weighted eligible uptake (the mirrors the
	// redirector can offer for the product, holding the location verified)
	// every location of a release's product must reach before an alias
	// moves to it. Default: 0.8.
	PromoteAt float64 `yaml:"promote_at"`
}

// SignatureClearsigned is the value of releases.signature for a manifest
// that is a clearsigned message.
const SignatureClearsigned = "clearsigned"

// Signed reports whether manifests must be signed (releases.signature).
func (r ReleasesConfig) Signed() bool { return r.Signature != "" }

// Clearsigned reports whether manifests are clearsigned messages.
func (r ReleasesConfig) Clearsigned() bool { return r.Signature == SignatureClearsigned }

// HTTPConfig is the daemon's own HTTP server.
type HTTPConfig struct {
	// Listen is the address of `sentry run`'s status page, /api/, /metrics,
	// /healthz and /hooks/release. Default: 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// PublicURL is where people reach the status page (through a proxy,
	// say): mails link a mirror's page under it. Default: none (no link).
	PublicURL string `yaml:"public_url"`
	// DBConns is the pool of database connections of the status page,
	// /api/ and /metrics, apart from the one runs and leases use, so that
	// no flood of requests starves their heartbeats. Default: 2.
	DBConns int `yaml:"db_conns"`
}

// ScheduleConfig holds robfig/cron specifications, evaluated in UTC.
type ScheduleConfig struct {
	// Sweep is the light sweep's schedule. Default: "@every 15m".
	Sweep string `yaml:"sweep"`
	// DeepSweep is the deep (checksum) sweep's schedule. Default: "0 3 * * *".
	DeepSweep string `yaml:"deep_sweep"`
}

// ChecksConfig governs how sentry talks to mirrors.
type ChecksConfig struct {
	// Contact is put in the User-Agent, "sentry/<version> (+<contact>)", so
	// a mirror admin can reach the operator: a URL or an e-mail address.
	// Required.
	Contact string `yaml:"contact"`
	// Concurrency caps requests in flight across all mirrors. Default: 64.
	Concurrency int `yaml:"concurrency"`
	// PerMirrorConcurrency caps requests in flight to one mirror, unless
	// sentry_mirror_settings.max_concurrency says otherwise. Default: 4.
	PerMirrorConcurrency int `yaml:"per_mirror_concurrency"`
	// PerMirrorRate caps the requests per second sent to one mirror,
	// across every sentry working on it (a mirror is worked by one at a
	// time), retries and redirects included, unless
	// sentry_mirror_settings.max_rate says otherwise. Default: 20.
	PerMirrorRate float64 `yaml:"per_mirror_rate"`
	// ConnectTimeout bounds a TCP connect (and, separately, a TLS
	// handshake). Default: 10s.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// HeaderTimeout bounds the wait for response headers. Default: 30s.
	HeaderTimeout Duration `yaml:"header_timeout"`
	// BodyIdleTimeout is the window of MinRate: a body that delivers
	// less than MinRate × BodyIdleTimeout (and at least 1 KiB) in one
	// such window (nothing, a drip, a crawl) times out. Default: 30s.
	BodyIdleTimeout Duration `yaml:"body_idle_timeout"`
	// MinRate is the slowest a body may come, in bytes a second, over
	// every BodyIdleTimeout window: a check of a file of size S takes at
	// most S / MinRate + BodyIdleTimeout once its headers are in.
	// Default: 32KiB (a 500 MiB file at exactly that rate takes 4.4 h).
	MinRate Size `yaml:"min_rate"`
	// Retries is how often a transient failure (connection error, timeout,
	// 5xx, 429) is retried within one check. Default: 2.
	Retries int `yaml:"retries"`
	// RetryWaitMin and RetryWaitMax bound the backoff between attempts,
	// including a mirror's Retry-After. Defaults: 1s and 15s.
	RetryWaitMin Duration `yaml:"retry_wait_min"`
	RetryWaitMax Duration `yaml:"retry_wait_max"`
	// SourceAddress is the local IP address (v4 or v6, no port) that
	// connections to mirrors and the master are made from: for a
	// multi-homed host, or to tell several sentry instances on one host
	// apart in a mirror's firewall. Default: empty, the system chooses.
	SourceAddress string `yaml:"source_address"`
	// CAFile is a PEM file of extra trusted root certificates, beside the
	// system's (private mirrors, the mail relay). Default: none.
	CAFile string `yaml:"ca_file"`
	// TLSExpiryWarning: an https mirror whose certificate expires within
	// this long gets a warning (report, page, metrics, notifications); it
	// stays offered. Default: 14d.
	TLSExpiryWarning Duration `yaml:"tls_expiry_warning"`
	// Families are the address families this vantage point can reach
	// (ipv4, ipv6): a mirror whose host has addresses of several of them
	// is checked over each. Default: [ipv4, ipv6].
	Families []string `yaml:"families"`
}

// PrimeConfig governs `sentry prime`.
type PrimeConfig struct {
	// Deadline is how long trigger and passive mirrors have to show the
	// release's files before they count as not_primed. Default: 20m.
	Deadline Duration `yaml:"deadline"`
	// PollInterval is the first wait between polls of a trigger or passive
	// mirror; it doubles up to PollMax. Defaults: 15s and 2m.
	PollInterval Duration `yaml:"poll_interval"`
	PollMax      Duration `yaml:"poll_max"`
}

// GuardConfig is the mass-failure guard.
type GuardConfig struct {
	// MaxDownFraction: when more than this share of the checked mirrors fail
	// wholesale in one run, sentry suspects its own network and marks
	// nothing down. Default: 0.5.
	MaxDownFraction float64 `yaml:"max_down_fraction"`
}

// StateConfig is the hysteresis of mirror state across sweeps.
type StateConfig struct {
	// DownAfter consecutive failed sweeps take a mirror down. Default: 2.
	DownAfter int `yaml:"down_after"`
	// UpAfter consecutive good sweeps bring it back. Default: 2.
	UpAfter int `yaml:"up_after"`
	// Quorum is how many vantage points must find a mirror failing in a
	// sweep for the sweep to count against it. 0 (the default) means a
	// majority of the vantage points seen in the last hour, so that one
	// sentry alone behaves as before and one region's network trouble
	// cannot take a mirror down. A mirror failing from fewer is reported
	// as partially unreachable.
	Quorum int `yaml:"quorum"`
	// FamilyPolicy decides what a mirror broken over one address family
	// (reached over another) becomes: "degraded" (the default: kept
	// offered, reported) or "down" (the sweep counts against it).
	FamilyPolicy string `yaml:"family_policy"`
}

// ClusterConfig governs how several sentry processes on one database share
// work (sentry_work rows, leased to one process at a time).
type ClusterConfig struct {
	// Lease is how long a process holds a claimed mirror without renewing
	// it (it renews every third of a lease while alive); a process not
	// seen for a lease is gone, and its work is taken over. Default: 30s.
	Lease Duration `yaml:"lease"`
	// Poll is how often an idle process looks for work when no
	// notification arrives (PostgreSQL LISTEN/NOTIFY wakes it sooner).
	// Default: 5s.
	Poll Duration `yaml:"poll"`
}

// RetentionConfig bounds the age of sentry's records. Older ones are
// deleted, in small batches, by every `sentry run` (at start and hourly)
// and by `sentry db prune`. The bouncer tables (sentry_log unless
// SentryLog says otherwise), the state history and the file states are
// never pruned.
type RetentionConfig struct {
	// Checks is how long check rows, finished runs (with their work rows),
	// instances not seen and mail notices are kept, and the block digests
	// of releases no longer live. Default: 30d.
	Checks Duration `yaml:"checks"`
	// Rollup is how long the hourly counts of checks (reports, the status
	// page's history) are kept. Default: 400d.
	Rollup Duration `yaml:"rollup"`
	// SentryLog is how long the bouncer's sentry_log rows (one per mirror
	// per run) are kept. Default: 0, for ever, as bouncer's viewers
	// expect.
	SentryLog Duration `yaml:"sentry_log"`
}

// SweepConfig governs integrity sweeps.
type SweepConfig struct {
	// DeepPeriod is the bound within which every (mirror, file) pair is
	// re-hashed by deep sweeps. Default: 7d.
	DeepPeriod Duration `yaml:"deep_period"`
	// CatchUpBytes bounds, per mirror and light sweep, the bytes hashed
	// to catch up: files present but not verified where they must be
	// before they are offered (a mirror back from down or from the
	// admin's switch, a new mirror, files it changed). What does not fit
	// waits for the next sweeps, withheld (active=false) meanwhile; a
	// file that was failing and is present again is hashed whatever the
	// budget. Default: 4 GiB.
	CatchUpBytes Size `yaml:"catch_up_bytes"`
}

// Verification modes of verify.mode.
const (
	VerifyFull    = "full"
	VerifySampled = "sampled"
)

// VerifyConfig governs how a prime verifies a file on a mirror (deep
// sweeps always hash in full).
type VerifyConfig struct {
	// Mode is "full" (every byte of every file through the hash) or
	// "sampled" (the file's size and SampleBlocks of its blocks, read with
	// Range requests and compared with block digests of the master's
	// copy). Default: full.
	Mode string `yaml:"mode"`
	// BlockSize is the size of the blocks digested from the master and
	// sampled on mirrors, in bytes or with a unit ("16KiB"). Default:
	// 16KiB.
	BlockSize Size `yaml:"block_size"`
	// SampleBlocks is how many blocks of a file a sampled verification
	// reads, the first and the last among them. Default: 32.
	SampleBlocks int `yaml:"sample_blocks"`
}

// Sampled reports whether primes verify by sampling.
func (v VerifyConfig) Sampled() bool { return v.Mode == VerifySampled }

// HookConfig authenticates the release hook.
type HookConfig struct {
	// Secret is the HMAC-SHA256 key of POST /hooks/release. Prefer
	// SENTRY_HOOK_SECRET. Without one the hook is disabled.
	Secret string `yaml:"secret"`
	// ReplayWindow is how far X-Sentry-Timestamp may be from now.
	// Default: 5m.
	ReplayWindow Duration `yaml:"replay_window"`
}

// TriggerConfig signs triggers sent to trigger-mode mirrors.
type TriggerConfig struct {
	// Secret is the HMAC-SHA256 key of X-Sentry-Signature. Prefer
	// SENTRY_TRIGGER_SECRET. Required when any mirror is in trigger mode.
	Secret string `yaml:"secret"`
}

// NotifyConfig sends webhook notifications (package notify).
type NotifyConfig struct {
	// Webhooks are URLs that receive a JSON POST on every mirror state
	// change and every mass-failure guard activation. Default: none.
	Webhooks []string `yaml:"webhooks"`
	// Secret, when set, signs each POST with X-Sentry-Timestamp and
	// X-Sentry-Signature as the release hook is signed. Prefer
	// SENTRY_NOTIFY_SECRET.
	Secret string `yaml:"secret"`
	// Retries of a failed POST (a network error, 429 or 5xx), with
	// exponential backoff up to RetryWaitMax. Defaults: 5 and 1m.
	Retries      int      `yaml:"retries"`
	RetryWaitMax Duration `yaml:"retry_wait_max"`
	// Timeout bounds one POST. Default: 10s.
	Timeout Duration `yaml:"timeout"`
	// SMTP, when its host is set, mails mirror admins
	// (sentry_mirror_settings.contact) when their mirror goes down, comes
	// back or gets a certificate warning.
	SMTP SMTPConfig `yaml:"smtp"`
	// DigestTo are operators' addresses that get a daily digest of the
	// mirrors down, degraded, in maintenance or with certificate warnings.
	DigestTo []string `yaml:"digest_to"`
}

// SMTPConfig is the mail relay sentry sends through.
type SMTPConfig struct {
	// Host of the relay; empty: no mail. Port: default 587.
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// StartTLS requires STARTTLS before anything else is said (the
	// relay's certificate checked against the system roots and
	// checks.ca_file). Default: true.
	StartTLS bool `yaml:"starttls"`
	// ImplicitTLS speaks TLS from the first byte, as a relay on port 465
	// (submissions, RFC 8314) wants; STARTTLS is then not used. The
	// certificate is checked as for StartTLS. Default: false.
	ImplicitTLS bool `yaml:"implicit_tls"`
	// User and Password authenticate (AUTH PLAIN, over TLS only). Prefer
	// SENTRY_SMTP_PASSWORD for the password.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// From is the sender address. Required with a host.
	From string `yaml:"from"`
}

// Default returns a configuration holding every default; Load
// decodes the file over it.
func Default() Config {
	return Config{
		Database: DatabaseConfig{MaxConns: 8},
		Releases: ReleasesConfig{
			Manifest:         "SHA256SUMS",
			DefaultLangs:     []string{"en-US"},
			MaxManifestBytes: 64 << 20,
			// manifest.DefaultMaxEntries
			MaxManifestEntries: 100_000,
			PromoteAt:          0.8,
		},
		HTTP:     HTTPConfig{Listen: "127.0.0.1:8080", DBConns: 2},
		Schedule: ScheduleConfig{Sweep: "@every 15m", DeepSweep: "0 3 * * *"},
		Checks: ChecksConfig{
			Concurrency:          64,
			PerMirrorConcurrency: 4,
			PerMirrorRate:        20,
			ConnectTimeout:       Duration(10 * time.Second),
			HeaderTimeout:        Duration(30 * time.Second),
			BodyIdleTimeout:      Duration(30 * time.Second),
			MinRate:              32 << 10,
			Retries:              2,
			RetryWaitMin:         Duration(time.Second),
			RetryWaitMax:         Duration(15 * time.Second),
			TLSExpiryWarning:     Duration(14 * 24 * time.Hour),
			Families:             []string{FamilyIPv4, FamilyIPv6},
		},
		Prime: PrimeConfig{
			Deadline:     Duration(20 * time.Minute),
			PollInterval: Duration(15 * time.Second),
			PollMax:      Duration(2 * time.Minute),
		},
		Guard:  GuardConfig{MaxDownFraction: 0.5},
		State:  StateConfig{DownAfter: 2, UpAfter: 2, FamilyPolicy: PolicyDegraded},
		Sweep:  SweepConfig{DeepPeriod: Duration(7 * 24 * time.Hour), CatchUpBytes: 4 << 30},
		Verify: VerifyConfig{Mode: VerifyFull, BlockSize: 16 << 10, SampleBlocks: 32},
		Hook:   HookConfig{ReplayWindow: Duration(5 * time.Minute)},
		Notify: NotifyConfig{Retries: 5, RetryWaitMax: Duration(time.Minute), Timeout: Duration(10 * time.Second),
			SMTP: SMTPConfig{Port: 587, StartTLS: true}},
		Cluster:       ClusterConfig{Lease: Duration(30 * time.Second), Poll: Duration(5 * time.Second)},
		Retention:     RetentionConfig{Checks: Duration(30 * 24 * time.Hour), Rollup: Duration(400 * 24 * time.Hour)},
		Vantage:       "default",
		ShutdownGrace: Duration(30 * time.Second),
	}
}

// UserAgent is the User-Agent of every request sentry makes.
func (c *Config) UserAgent() string {
	return fmt.Sprintf("sentry/%s (+%s)", Version, strings.TrimSpace(c.Checks.Contact))
}

// Version is sentry's version, set at build time with
// -ldflags "-X github.com/mirrorsentry/sentry/sentry/config.Version=...".
var Version = "0.1.0-dev"

// MirrorRate is the request rate of a mirror whose own cap (in
// sentry_mirror_settings.max_rate) is own: own, or checks.per_mirror_rate
// when it has none.
func (c *Config) MirrorRate(own float64) float64 {
	if own > 0 {
		return own
	}
	return c.Checks.PerMirrorRate
}

// MirrorConcurrency is how many requests a mirror whose own cap (in
// sentry_mirror_settings.max_concurrency) is own takes at once: own, or
// checks.per_mirror_concurrency when it has none.
func (c *Config) MirrorConcurrency(own int) int {
	if own > 0 {
		return own
	}
	return c.Checks.PerMirrorConcurrency
}

// ReleaseDir is the release directory of release, with a trailing slash.
func (c *Config) ReleaseDir(release string) string {
	d := strings.ReplaceAll(c.Releases.Dir, "{release}", release)
	if !strings.HasSuffix(d, "/") {
		d += "/"
	}
	return d
}

// ManifestURL is where release's manifest is read from.
func (c *Config) ManifestURL(release string) string {
	if strings.Contains(c.Releases.Manifest, "://") {
		return strings.ReplaceAll(c.Releases.Manifest, "{release}", url.PathEscape(release))
	}
	return primer.FileURL(c.Master.URL, c.ReleaseDir(release), c.Releases.Manifest)
}

// SignatureURL is where release's detached manifest signature is read
// from: beside the manifest (in its URL's directory) for a name, the
// template for a URL; "" when manifests are not signed or clearsigned.
func (c *Config) SignatureURL(release string) string {
	sig := c.Releases.Signature
	switch {
	case sig == "" || sig == SignatureClearsigned:
		return ""
	case strings.Contains(sig, "://"):
		return strings.ReplaceAll(sig, "{release}", url.PathEscape(release))
	}
	m := c.ManifestURL(release)
	dir := m[:strings.LastIndex(m, "/")+1]
	segs := strings.Split(sig, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return dir + strings.Join(segs, "/")
}

// ProductNames are the bouncer product names of release.
func (c *Config) ProductNames(release string) []string {
	out := make([]string, len(c.Releases.Products))
	for i, p := range c.Releases.Products {
		out[i] = strings.ReplaceAll(p, "{release}", release)
	}
	return out
}

// AliasProduct is the product an alias of releases.aliases names for
// release: its pattern with the release ("" for an alias not configured).
func (c *Config) AliasProduct(alias, release string) string {
	pat, ok := c.Releases.Aliases[alias]
	if !ok {
		return ""
	}
	return strings.ReplaceAll(pat, "{release}", release)
}
