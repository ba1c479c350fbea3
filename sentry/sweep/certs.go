package sweep

import (
	"context"
	"fmt"
	"sort"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

// The certificates of https mirrors: recorded at each sweep, and a
// warning raised once per certificate that ends within
// checks.tls_expiry_warning.

// certOf is the certificate a judged mirror showed: the first vantage
// point's (by name) that saw one.
func certOf(js *judged) *checks.Cert {
	vs := make([]string, 0, len(js.verdicts))
	for v := range js.verdicts {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	for _, v := range vs {
		if c := js.verdicts[v].Cert; c != nil {
			return c
		}
	}
	return nil
}

// recordCerts records the certificates of the judged mirrors (written
// only when they changed) and raises a warning, once per certificate, for
// those ending within checks.tls_expiry_warning — not for a mirror in
// maintenance (it is raised after).
func (t *task) recordCerts(ctx context.Context, judged []*judged) {
	now := t.job.now()
	for _, js := range judged {
		c := certOf(js)
		if c == nil {
			continue
		}
		rec, err := t.job.Store.SaveCert(ctx, js.m.ID, *c)
		if err != nil {
			t.log.Warn("could not record a certificate", "mirror", js.m.Name, "err", err)
			continue
		}
		if rec.Error != "" || !rec.WarnedAt.IsZero() || !decide.TLSWarning(rec.NotAfter, now, t.job.Config.Checks.TLSExpiryWarning.D()) {
			continue
		}
		if in, _ := t.inWindow(js.m.ID); in {
			continue
		}
		first, err := t.job.Store.WarnCert(ctx, js.m.ID, rec.Fingerprint)
		if err != nil || !first {
			continue
		}
		why := fmt.Sprintf("the certificate of %s %s (%s), issued by %s", rec.Host, checks.ExpiresIn(rec.NotAfter, now),
			rec.NotAfter.UTC().Format("2006-01-02 15:04 UTC"), rec.Issuer)
		t.log.Warn("certificate expires soon", "mirror", js.m.Name, "host", rec.Host, "not_after", rec.NotAfter)
		observe.TLSWarned(observe.Or(t.job.Observer), observe.TLSEvent{At: now, RunID: t.run.ID, MirrorID: js.m.ID,
			Mirror: js.m.Name, BaseURL: safetext.URL(js.m.BaseURL), Host: rec.Host, Issuer: rec.Issuer, Names: rec.Names,
			NotAfter: rec.NotAfter, Fingerprint: rec.Fingerprint, Reason: why})
	}
}
