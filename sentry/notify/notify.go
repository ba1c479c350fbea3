// Package notify tells people what changed, by webhook and by mail, and
// never holds a run back doing it.
//
// Webhooks (Notifier, this file) get a JSON POST on every mirror state
// change, every activation of the mass-failure guard, every run that
// failed, every certificate warning and every changed manifest a sweep
// refused for its signature. Events go into a bounded queue
// per webhook URL, and one goroutine per URL posts them in order,
// retrying failures (a network error, a 429 or a 5xx) with exponential
// backoff. When a queue is full, or an event's retries are spent, the
// event is dropped and logged. Close delivers what is queued within its
// context's deadline. When a secret is configured, each POST carries
// X-Sentry-Timestamp and X-Sentry-Signature, signed as the release hook
// is (HMAC-SHA256 of the timestamp, a ".", and the body), so receivers
// can check it came from sentry.
//
// Mail (Mailer, mail.go) goes to a mirror's admin
// (sentry_mirror_settings.contact) when the mirror goes down, comes back
// or its certificate ends soon, and to operators (notify.digest_to) as a
// daily digest. What is owed is recorded in sentry_notices, so each mail
// goes out once whichever sentry sends it; a failed delivery is retried
// with backoff. The relay (SMTP, smtp.go) is spoken to over TLS (STARTTLS,
// or TLS from the first byte on port 465) and
// AUTH PLAIN, never with a password unencrypted to another host, and
// every configured secret is scrubbed from what is sent.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirrorsentry/sentry/sentry/hook"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

// Event types.
const (
	EventStateChanged = "mirror_state_changed"
	EventGuard        = "guard_activated"
	EventRunFailed    = "run_failed"
	EventTLSWarning   = "tls_warning"
	// EventManifestRejected: a sweep found a release's manifest changed
	// and refused it, its signature not verifying (releases.signature).
	EventManifestRejected = "manifest_rejected"
)

// Event is the JSON body of a notification.
type Event struct {
	// Event is mirror_state_changed, guard_activated, run_failed,
	// tls_warning, manifest_rejected or alias_promoted (promote.go).
	Event string `json:"event"`
	// ID is unique per event; a receiver seeing it twice (a retry after
	// a lost answer) can ignore the second.
	ID string `json:"id"`
	// Vantage is the sentry instance's vantage name.
	Vantage     string                    `json:"vantage"`
	StateChange *observe.StateChangeEvent `json:"state_change,omitempty"`
	Guard       *observe.GuardEvent       `json:"guard,omitempty"`
	Run         *observe.RunEvent         `json:"run,omitempty"`
	TLS         *observe.TLSEvent         `json:"tls,omitempty"`
	Manifest    *observe.ManifestEvent    `json:"manifest,omitempty"`
	Alias       *observe.AliasEvent       `json:"alias,omitempty"`
}

// NoRetries is the Retries of a Notifier or Mailer that tries once only
// (0 means the default).
const NoRetries = -1

// Options configure a Notifier.
type Options struct {
	// URLs are the webhooks; every event goes to each.
	URLs []string
	// Secret, when set, signs each POST.
	Secret []byte
	// Retries is how many times a failed POST is retried: 0 means the
	// default, 5; NoRetries, none.
	Retries int
	// RetryWaitMin and RetryWaitMax bound the backoff between attempts
	// (defaults 1s and 1m).
	RetryWaitMin, RetryWaitMax time.Duration
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	// QueueSize bounds the events waiting per URL (default 1000).
	QueueSize int
	// Vantage names this instance in the events.
	Vantage   string
	UserAgent string
	Logger    *slog.Logger
	// Dropped, when set, is called for every event given up on.
	Dropped func()
	// Client is the HTTP client (default: a new one with Timeout).
	Client *http.Client
}

func (o *Options) defaults() {
	if o.Retries == 0 {
		o.Retries = 5
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = time.Second
	}
	if o.RetryWaitMax < o.RetryWaitMin {
		o.RetryWaitMax = max(time.Minute, o.RetryWaitMin)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout,
			// A webhook that redirects is misconfigured: say so.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
}

// Notifier is a observe.Observer that posts state changes and guard
// activations to webhooks.
type Notifier struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context // cancelled when Close gives up
	cancel context.CancelFunc

	mu     sync.RWMutex
	closed bool
	queues []chan Event
	wg     sync.WaitGroup
	// left counts events not delivered because Close gave up.
	left atomic.Int64
}

var _ observe.Observer = (*Notifier)(nil)

// New starts a Notifier. With no URLs it does nothing (and costs nothing).
func New(opts Options) *Notifier {
	opts.defaults()
	n := &Notifier{opts: opts, log: opts.Logger.With("component", "notify")}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, u := range opts.URLs {
		q := make(chan Event, opts.QueueSize)
		n.queues = append(n.queues, q)
		n.wg.Add(1)
		go n.deliverAll(u, q)
	}
	return n
}

// Close stops taking events and delivers those queued, until ctx ends;
// then it cancels what is in flight and returns an error naming how many
// were left undelivered.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	for _, q := range n.queues {
		close(q)
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.cancel()
		<-done
	}
	n.cancel()
	if left := n.left.Load(); left > 0 {
		return fmt.Errorf("notify: %d webhook events not delivered before shutdown", left)
	}
	return nil
}

// CheckDone implements observe.Observer: checks are not notified.
func (n *Notifier) CheckDone(observe.CheckEvent) {}

// RunFinished implements observe.Observer: a run that failed (its plan
// could not be made — a manifest the master does not serve, nothing to
// check —, the database gone too long, a judgement never made) is
// notified; other ends are not (state changes and guards are).
func (n *Notifier) RunFinished(e observe.RunEvent) {
	if e.Outcome != "failed" {
		return
	}
	n.enqueue(Event{Event: EventRunFailed, Run: &e, ID: fmt.Sprintf("run-failed-%d", e.RunID)})
}

// StateChanged implements observe.Observer.
func (n *Notifier) StateChanged(e observe.StateChangeEvent) {
	n.enqueue(Event{Event: EventStateChanged, StateChange: &e,
		ID: fmt.Sprintf("state-%d-%d-%s", e.RunID, e.MirrorID, e.To)})
}

// TLSWarning implements observe.TLSObserver: a certificate ending within
// checks.tls_expiry_warning, once per certificate.
func (n *Notifier) TLSWarning(e observe.TLSEvent) {
	n.enqueue(Event{Event: EventTLSWarning, TLS: &e, ID: fmt.Sprintf("tls-%d-%.16s", e.MirrorID, e.Fingerprint)})
}

// ManifestRejected implements observe.ManifestObserver: a changed
// manifest a sweep refused, once per run and release.
func (n *Notifier) ManifestRejected(e observe.ManifestEvent) {
	n.enqueue(Event{Event: EventManifestRejected, Manifest: &e, ID: fmt.Sprintf("manifest-rejected-%d-%s", e.RunID, e.Release)})
}

// GuardHeld implements observe.Observer.
func (n *Notifier) GuardHeld(e observe.GuardEvent) {
	n.enqueue(Event{Event: EventGuard, Guard: &e, ID: fmt.Sprintf("guard-%d", e.RunID)})
}

func (n *Notifier) enqueue(e Event) {
	e.Vantage = n.opts.Vantage
	e = safeEvent(e)
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		n.drop(e, "notifier closed")
		return
	}
	for _, q := range n.queues {
		select {
		case q <- e:
		default:
			n.drop(e, "queue full")
		}
	}
}

func (n *Notifier) drop(e Event, why string) {
	n.log.Warn("webhook event dropped", "event", e.Event, "id", e.ID, "why", why)
	if n.opts.Dropped != nil {
		n.opts.Dropped()
	}
}

// deliverAll posts the events of one URL in order.
func (n *Notifier) deliverAll(url string, q <-chan Event) {
	defer n.wg.Done()
	for e := range q {
		if n.ctx.Err() != nil {
			n.left.Add(1) // Close gave up
			continue
		}
		if err := n.deliver(url, e); err != nil {
			if n.ctx.Err() != nil {
				n.left.Add(1)
				continue
			}
			n.drop(e, err.Error())
		}
	}
}

// errPermanent marks an answer a retry will not change (a 4xx but 429).
var errPermanent = errors.New("rejected")

func (n *Notifier) deliver(url string, e Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	wait := n.opts.RetryWaitMin
	for attempt := 0; ; attempt++ {
		err = n.post(url, e, body)
		if err == nil || errors.Is(err, errPermanent) || attempt >= n.opts.Retries {
			if err != nil {
				return fmt.Errorf("post to webhook %s after %d attempts: %w", redact(url), attempt+1, err)
			}
			return nil
		}
		// Full jitter within [wait/2, wait].
		d := wait/2 + rand.N(wait/2+1)
		n.log.Debug("webhook post failed; retrying", "id", e.ID, "in", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-n.ctx.Done():
			t.Stop()
			return fmt.Errorf("post to webhook %s: %w", redact(url), n.ctx.Err())
		}
		wait = min(wait*2, n.opts.RetryWaitMax)
	}
}

func (n *Notifier) post(url string, e Event, body []byte) error {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Sentry-Event", e.Event)
	req.Header.Set("X-Sentry-Delivery", e.ID)
	if n.opts.UserAgent != "" {
		req.Header.Set("User-Agent", n.opts.UserAgent)
	}
	if len(n.opts.Secret) > 0 {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set(hook.HeaderTimestamp, ts)
		req.Header.Set(hook.HeaderSignature, hook.Sign(n.opts.Secret, ts, body))
	}
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		return errors.New(redactErr(err, url))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	default:
		return fmt.Errorf("%w: HTTP %d", errPermanent, resp.StatusCode)
	}
}

// redact shortens a webhook URL to its scheme and host: webhook URLs often
// carry a token in their path or query.
func redact(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil || u.Host == "" {
		return "(webhook)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// redactErr is err's text without the webhook URL in it.
func redactErr(err error, raw string) string {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return strings.ReplaceAll(err.Error(), raw, redact(raw))
}
