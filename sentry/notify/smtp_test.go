package notify

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"testing"
	"time"
)

// TestMessageHeadersCannotBeInjected: names from the database go into the
// subject and the body; a line break in them never starts a header.
func TestMessageHeadersCannotBeInjected(t *testing.T) {
	m := mail{To: []string{"admin@example.org"}, ID: "state-1",
		Subject: "[sentry] mirror evil\r\nBcc: victim@example.org\r\nX: é is down",
		Body:    "Hello,\nline two é\n" + strings.Repeat("x", 200) + "\n"}
	raw := message("sentry@example.org", m, time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC))
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Bcc") != "" || len(msg.Header["Subject"]) != 1 {
		t.Fatalf("a header was injected:\n%s", raw)
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || !strings.Contains(subject, "evil  Bcc: victim@example.org  X: é is down") {
		t.Errorf("subject %q (%v)", subject, err)
	}
	if !strings.HasPrefix(msg.Header.Get("Message-ID"), "<state-1.") || msg.Header.Get("To") != "admin@example.org" {
		t.Errorf("headers: %v", msg.Header)
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if !strings.Contains(string(body), "line two é\r\n") || !strings.Contains(string(body), strings.Repeat("x", 200)) {
		t.Errorf("body: %q", body)
	}
	for _, l := range strings.Split(string(raw), "\r\n") {
		if len(l) > 998 {
			t.Errorf("a line of %d bytes", len(l))
		}
	}
}

func TestScrubRemovesEverySecret(t *testing.T) {
	m := &Mailer{o: MailOptions{Secrets: []string{"p@ss/w#rd", "p%40ss%2Fw%23rd"}}}
	got := m.scrub("reason: connect to https://u:p%40ss%2Fw%23rd@mirror/ failed; password p@ss/w#rd")
	if strings.Contains(got, "p@ss") || strings.Contains(got, "p%40ss") {
		t.Errorf("scrubbed: %q", got)
	}
}
