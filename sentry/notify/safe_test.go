package notify_test

import (
	"context"
	"encoding/json"
	"mime"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/smtptest"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

// TestMailAndWebhooksShowHostileTextAsHarmlessText: a mirror whose name
// holds an escape, a bell, a carriage return and a right-to-left
// override, and whose base URL holds a password, goes down: the mail to
// its admin (through a real SMTP server) and the webhook show the name as
// visible text and the base URL without its password.
func TestMailAndWebhooksShowHostileTextAsHarmlessText(t *testing.T) {
	t.Parallel()
	const name = "evil\x1b]0;pwned\x07\r\u202Egnp.exe"
	w := world.New(t, nil)
	d := w.Deps
	w.Static(t, "good1")
	w.Static(t, "good2")
	s := world.Static(t, "evil", w.Rel)
	id := w.AddMirror(t, name, strings.Replace(s.URL, "http://", "http://user:secretpass@", 1), nil)
	factory.MirrorSettings(context.Background(), t, w.Pool(), &factory.MirrorSettingsOpts{MirrorID: id, Contact: "admin@evil.example"})
	w.Prime(t)
	srv := smtptest.Start(t, smtptest.Options{})
	mailer := newTestMailer(t, w, srv, nil, nil)
	recv := world.NewReceiver(t, 0)
	hooks := notify.New(notify.Options{URLs: []string{recv.URL}, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	d.Observer = observe.All(d.Observer, mailer, hooks)
	world.Failing(s).Store(true)
	w.Sweep(t, false)
	w.Sweep(t, false) // down
	ms := srv.Wait(t, 1, time.Minute)
	closeMailer(t, mailer)
	if err := hooks.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	const shown = "evil␛]0;pwned␇␍[U+202E]gnp.exe"
	m := ms[0]
	if subj, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); err != nil || !strings.Contains(subj, shown) {
		t.Errorf("subject %q does not show the name as visible text", subj)
	}
	if !strings.Contains(m.Body, shown) || !strings.Contains(m.Body, "("+s.URL+")") {
		t.Errorf("the mail does not show the name and base URL as expected:\n%s", m.Body)
	}
	if strings.Contains(string(m.Raw), "secretpass") || strings.Contains(m.Body, "secretpass") {
		t.Error("the mail shows the base URL's password")
	}
	if i := strings.IndexFunc(m.Body, func(r rune) bool { return r != '\n' && safetext.Replaced(r) }); i >= 0 {
		t.Errorf("the mail's body holds %q raw", []rune(m.Body[i:])[0])
	}
	got := recv.Got()
	if len(got) == 0 {
		t.Fatal("no webhook")
	}
	for _, e := range got {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), "secretpass") {
			t.Errorf("webhook %s shows the base URL's password", b)
		}
		if sc := e.StateChange; sc != nil && (sc.Mirror != shown || sc.BaseURL != s.URL) {
			t.Errorf("webhook: mirror %q, baseurl %q; want %q, %q", sc.Mirror, sc.BaseURL, shown, s.URL)
		}
	}
}
