package notify

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Mail to mirror admins and operators.
//
// When a mirror goes down, comes back, or its certificate ends soon, its
// contact (sentry_mirror_settings.contact) gets one mail saying why, with
// the checks that decided it, its failing files and a link to its page.
// Operators (notify.digest_to) get a daily digest. What is owed is
// recorded in sentry_notices — one row per state change, certificate or
// day — so that whichever sentry sends it, and however often they
// restart, each goes out once; a sender claims a notice for a while,
// and a failed attempt is retried with backoff. The Mailer's loop never
// blocks a run: observers only wake it.

// Limits of a mail.
const (
	mailChecks = 10 // deciding checks listed
	mailFiles  = 20 // failing files listed
	// mailWindow is how old a change may be and still be mailed (a
	// sentry given a relay today does not mail last month's news).
	mailWindow = 24 * time.Hour
	claimFor   = 2 * time.Minute
)

// MailOptions configure a Mailer.
type MailOptions struct {
	Store    *store.Store
	Reporter *report.Reporter
	SMTP     SMTP
	// PublicURL is where people reach the status page: mails link the
	// mirror's page under it ("" for no link).
	PublicURL string
	// DigestTo get the daily digest ("": none).
	DigestTo []string
	// Retries of a notice that failed, with backoff from RetryWaitMin
	// doubling up to RetryWaitMax (defaults 5, 30s, 1h; NoRetries: none).
	Retries                    int
	RetryWaitMin, RetryWaitMax time.Duration
	// Poll is how often the loop looks for notices owed when nothing
	// wakes it (default 1m).
	Poll time.Duration
	// Secrets are scrubbed from every mail and error, whatever a reason
	// holds (config.Secrets).
	Secrets []string
	// Signature ends every mail: "sentry/<version> (+<contact>)".
	Signature string
	Logger    *slog.Logger
	// Now is the clock of the digest's day; nil: time.Now.
	Now func() time.Time
}

// Mailer is an observe.Observer that mails notices.
type Mailer struct {
	o    MailOptions
	log  *slog.Logger
	id   string
	kick chan struct{}
	stop chan context.Context
	done chan struct{}
	once sync.Once
}

var (
	_ observe.Observer    = (*Mailer)(nil)
	_ observe.TLSObserver = (*Mailer)(nil)
)

// NewMailer starts a Mailer's loop.
func NewMailer(o MailOptions) *Mailer {
	if o.Retries == 0 {
		o.Retries = 5
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = 30 * time.Second
	}
	if o.RetryWaitMax < o.RetryWaitMin {
		o.RetryWaitMax = max(time.Hour, o.RetryWaitMin)
	}
	if o.Poll <= 0 {
		o.Poll = time.Minute
	}
	if o.SMTP.Timeout <= 0 {
		o.SMTP.Timeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	host, _ := os.Hostname()
	m := &Mailer{o: o, log: o.Logger.With("component", "mail"), id: fmt.Sprintf("%s:%d", host, os.Getpid()),
		kick: make(chan struct{}, 1), stop: make(chan context.Context, 1), done: make(chan struct{})}
	go m.loop()
	m.wake()
	return m
}

func (m *Mailer) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// CheckDone implements observe.Observer: checks are not mailed.
func (m *Mailer) CheckDone(observe.CheckEvent) {}

// StateChanged implements observe.Observer: the change is recorded
// already; the loop mails it.
func (m *Mailer) StateChanged(observe.StateChangeEvent) { m.wake() }

// GuardHeld implements observe.Observer: not mailed (the webhooks and
// the alerts say it).
func (m *Mailer) GuardHeld(observe.GuardEvent) {}

// RunFinished implements observe.Observer: what the run recorded is
// mailed now.
func (m *Mailer) RunFinished(observe.RunEvent) { m.wake() }

// TLSWarning implements observe.TLSObserver.
func (m *Mailer) TLSWarning(observe.TLSEvent) { m.wake() }

// Close sends what is owed until ctx ends, then stops the loop. What is
// left is sent by the next sentry that runs with a relay.
func (m *Mailer) Close(ctx context.Context) error {
	m.once.Do(func() { m.stop <- ctx })
	select {
	case <-m.done:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if n, err := m.o.Store.OpenNotices(sctx); err == nil && n > 0 {
		return fmt.Errorf("mail: %d notices not sent yet (the next sentry with notify.smtp sends them)", n)
	}
	return nil
}

func (m *Mailer) loop() {
	defer close(m.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := time.NewTicker(m.o.Poll)
	defer t.Stop()
	for {
		select {
		case <-m.kick:
		case <-t.C:
		case until := <-m.stop:
			// A last round for what the run just recorded, within the
			// time Close was given.
			context.AfterFunc(until, cancel)
			m.round(ctx)
			return
		}
		m.round(ctx)
	}
}

// round records the notices owed and sends those due.
func (m *Mailer) round(ctx context.Context) {
	if _, err := m.o.Store.CreateNotices(ctx, mailWindow); err != nil {
		m.log.Warn("cannot record the notices owed", "err", m.scrub(err.Error()))
		return
	}
	if len(m.o.DigestTo) > 0 {
		day := m.o.Now().UTC().Format("2006-01-02")
		if err := m.o.Store.EnsureNotice(ctx, store.NoticeDigest, "digest-"+day); err != nil {
			m.log.Warn("cannot record the digest", "err", m.scrub(err.Error()))
		}
	}
	for ctx.Err() == nil {
		n, ok, err := m.o.Store.ClaimNotice(ctx, m.id, claimFor)
		if err != nil {
			m.log.Warn("cannot claim a notice", "err", m.scrub(err.Error()))
			return
		}
		if !ok {
			return
		}
		m.deliver(ctx, n)
	}
}

// deliver sends one claimed notice and records what came of it.
func (m *Mailer) deliver(ctx context.Context, n store.Notice) {
	ml, skip, err := m.compose(ctx, n)
	if err == nil && skip == "" {
		// Whatever a mirror's name or a detail holds, the mail shows it
		// as harmless text (safetext), and no secret.
		ml.Subject, ml.Body = m.scrub(safetext.Text(ml.Subject)), m.scrub(safetext.Lines(ml.Body))
		err = m.o.SMTP.send(ctx, ml, message(m.o.SMTP.From, ml, time.Now()))
	}
	rec, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	switch {
	case skip != "":
		m.log.Info("notice not mailed", "notice", n.Key, "why", skip)
		_ = m.o.Store.NoticeFailed(rec, n, skip, 0, true)
	case err == nil:
		m.log.Info("notice mailed", "notice", n.Key, "to", strings.Join(ml.To, ", "))
		if err := m.o.Store.NoticeSent(rec, n); err != nil {
			m.log.Warn("a notice was mailed, but recording it failed: it may go out twice", "notice", n.Key, "err", m.scrub(err.Error()))
		}
	default:
		why := m.scrub(err.Error())
		giveUp := n.Attempts > m.o.Retries
		wait := m.backoff(n.Attempts)
		m.log.Warn("mailing a notice failed", "notice", n.Key, "attempt", n.Attempts, "gave_up", giveUp, "retry_in", wait, "err", why)
		_ = m.o.Store.NoticeFailed(rec, n, why, wait, giveUp)
	}
}

// backoff is the wait after the attempt-th failure: RetryWaitMin doubling
// up to RetryWaitMax, with jitter (between half and all of it).
func (m *Mailer) backoff(attempt int) time.Duration {
	w := m.o.RetryWaitMin
	for i := 1; i < attempt && w < m.o.RetryWaitMax; i++ {
		w *= 2
	}
	w = min(w, m.o.RetryWaitMax)
	return w/2 + rand.N(w/2+1)
}

// scrub removes every configured secret from s.
func (m *Mailer) scrub(s string) string {
	for _, sec := range m.o.Secrets {
		s = strings.ReplaceAll(s, sec, "xxxxx")
	}
	return s
}

// compose builds the mail of a notice; skip says why it is not to be
// sent (no contact any more, a certificate replaced since).
func (m *Mailer) compose(ctx context.Context, n store.Notice) (mail, string, error) {
	switch n.Kind {
	case store.NoticeState:
		sm, err := m.o.Store.StateMail(ctx, n.Key, max(mailChecks, mailFiles))
		if err != nil {
			return mail{}, "", err
		}
		if sm.Mirror.Contact == "" {
			return mail{}, "the mirror has no contact any more", nil
		}
		return m.stateMail(n, sm), "", nil
	case store.NoticeTLS:
		tm, err := m.o.Store.TLSMail(ctx, n.Key, n.MirrorID)
		if err != nil {
			return mail{}, "", err
		}
		switch {
		case tm.Mirror.Contact == "":
			return mail{}, "the mirror has no contact any more", nil
		case tm.Cert == nil:
			return mail{}, "the certificate was replaced since the warning", nil
		}
		return m.tlsMail(n, tm), "", nil
	case store.NoticeDigest:
		ml, err := m.digest(ctx, n)
		return ml, "", err
	}
	return mail{}, "unknown kind of notice " + n.Kind, nil
}

// pageLink is the mirror's page under the public URL, "" without one.
func (m *Mailer) pageLink(name string) string {
	if m.o.PublicURL == "" {
		return ""
	}
	return strings.TrimRight(m.o.PublicURL, "/") + "/mirrors/" + url.PathEscape(name)
}

// safeBase is a base URL as a mail shows it: without user info.
func safeBase(raw string) string { return safeURL(raw) }

func (m *Mailer) foot(b *strings.Builder, name, why string) {
	if link := m.pageLink(name); link != "" {
		fmt.Fprintf(b, "\nThe mirror's page: %s\n", link)
	}
	fmt.Fprintf(b, "\n%s\n-- \n%s\n", why, m.o.Signature)
}

func (m *Mailer) stateMail(n store.Notice, sm store.StateMail) mail {
	var b strings.Builder
	name := oneLine(sm.Mirror.Name)
	at := sm.At.UTC().Format("2006-01-02 15:04 UTC")
	subject := fmt.Sprintf("[sentry] mirror %s is down", name)
	fmt.Fprintf(&b, "Hello,\n\nsentry checks the mirror %s (%s) for the download redirector.\n\n", name, safeBase(sm.Mirror.BaseURL))
	if sm.To == "down" {
		fmt.Fprintf(&b, "It went down at %s: the redirector sends users to other mirrors until it is back.\n", at)
	} else {
		subject = fmt.Sprintf("[sentry] mirror %s is back up", name)
		fmt.Fprintf(&b, "It is back up since %s: the redirector sends users there again.\n", at)
	}
	fmt.Fprintf(&b, "\nWhy: %s\n", oneLine(sm.Reason))
	if len(sm.Checks) > 0 {
		fmt.Fprintf(&b, "\nThe checks that decided it (run %d):\n", sm.RunID)
		for i, c := range sm.Checks {
			if i == mailChecks {
				break
			}
			what := "the mirror"
			if c.Path != "" {
				what = c.Path
			}
			over := ""
			if c.Family != "" {
				over = " over " + checks.Family(c.Family).Label()
			}
			fmt.Fprintf(&b, "  %s from %s%s: %s: %s: %s\n", c.At.UTC().Format("15:04:05"), oneLine(c.Vantage), over, oneLine(what),
				c.Kind, oneLine(c.Detail))
		}
		if more := sm.ChecksTotal - min(len(sm.Checks), mailChecks); more > 0 {
			fmt.Fprintf(&b, "  and %d more failed checks\n", more)
		}
	}
	if len(sm.Files) > 0 {
		fmt.Fprintf(&b, "\nFiles failing there now (%d):\n", sm.FilesTotal)
		for _, f := range sm.Files {
			fmt.Fprintf(&b, "  %s: %s: %s: %s\n", oneLine(f.Release), oneLine(f.Path), f.Kind, oneLine(f.Detail))
		}
		if more := sm.FilesTotal - len(sm.Files); more > 0 {
			fmt.Fprintf(&b, "  and %d more\n", more)
		}
	}
	m.foot(&b, sm.Mirror.Name, "You get this mail because this address is the mirror's contact (sentry_mirror_settings.contact).\n"+
		"One mail per change of state; nothing is sent while a maintenance window holds.")
	return mail{To: []string{sm.Mirror.Contact}, Subject: subject, Body: b.String(), ID: n.Key}
}

func (m *Mailer) tlsMail(n store.Notice, tm store.TLSMail) mail {
	c := tm.Cert
	name := oneLine(tm.Mirror.Name)
	var b strings.Builder
	left := checks.ExpiresIn(c.NotAfter, time.Now())
	fmt.Fprintf(&b, "Hello,\n\nsentry checks the mirror %s (%s) for the download redirector.\n\n", name, safeBase(tm.Mirror.BaseURL))
	fmt.Fprintf(&b, "The certificate of %s %s, on %s.\n", oneLine(c.Host), left, c.NotAfter.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "  issued by: %s\n  subject:   %s\n  valid for: %s\n  SHA-256:   %s\n", oneLine(c.Issuer), oneLine(c.Subject),
		oneLine(strings.Join(c.Names, ", ")), c.Fingerprint)
	b.WriteString("\nThe mirror stays offered meanwhile. Once the certificate has expired its checks fail (tls), and\n" +
		"after a few failed sweeps the redirector stops sending users there: please renew it before then.\n")
	m.foot(&b, tm.Mirror.Name, "You get this mail because this address is the mirror's contact (sentry_mirror_settings.contact).\n"+
		"One mail per certificate.")
	return mail{To: []string{tm.Mirror.Contact}, Subject: fmt.Sprintf("[sentry] the certificate of mirror %s %s", name, left),
		Body: b.String(), ID: n.Key}
}

// digest is the operators' mail of the day: every mirror that is not
// simply up, and why.
func (m *Mailer) digest(ctx context.Context, n store.Notice) (mail, error) {
	rows, err := m.o.Reporter.States(ctx)
	if err != nil {
		return mail{}, err
	}
	now := time.Now()
	counts := map[string]int{}
	var lines []string
	warnings := 0
	for _, r := range rows {
		cond := r.Condition()
		counts[cond]++
		tls := r.TLSNote(now)
		if tls != "" {
			warnings++
		}
		if cond == "up" && tls == "" {
			continue
		}
		line := fmt.Sprintf("  %s: %s", oneLine(r.Name), cond)
		if why := r.Why(); why != "" && r.ShowsWhy() {
			line += ": " + oneLine(why)
		}
		if tls != "" {
			line += "\n      " + tls
		}
		if link := m.pageLink(r.Name); link != "" {
			line += "\n      " + link
		}
		lines = append(lines, line)
	}
	var parts []string
	for _, c := range report.Conditions {
		if counts[c] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[c], c))
		}
	}
	if warnings > 0 {
		parts = append(parts, fmt.Sprintf("%d certificate warnings", warnings))
	}
	sort.Strings(lines)
	day := strings.TrimPrefix(n.Key, "digest-")
	var b strings.Builder
	fmt.Fprintf(&b, "The mirrors on %s: %s.\n\n", day, strings.Join(parts, ", "))
	if len(lines) == 0 {
		b.WriteString("Every mirror is up, without a certificate warning.\n")
	} else {
		b.WriteString("Not simply up:\n" + strings.Join(lines, "\n") + "\n")
	}
	if m.o.PublicURL != "" {
		fmt.Fprintf(&b, "\nThe status page: %s/\n", strings.TrimRight(m.o.PublicURL, "/"))
	}
	fmt.Fprintf(&b, "\nYou get this daily digest because this address is in notify.digest_to.\n-- \n%s\n", m.o.Signature)
	return mail{To: m.o.DigestTo, Subject: fmt.Sprintf("[sentry] mirrors on %s: %s", day, strings.Join(parts, ", ")),
		Body: b.String(), ID: n.Key}, nil
}

// oneLine is s on one line, bounded: control and bidirectional
// characters made visible (safetext.Text), cut on a rune boundary.
func oneLine(s string) string {
	s = safetext.Text(s)
	if len(s) > 300 {
		cut := 300
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
