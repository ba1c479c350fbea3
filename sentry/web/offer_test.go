package web_test

import (
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/web"
)

// TestStatusPageSaysWhatTheRedirectorOffers: the status page counts a
// release's uptake over the mirrors the redirector can offer for it, says
// of each mirror it never offers why (no region, wrong scheme), of the
// mirror sentry never verified that it never did, and lists the locations
// whose users of a scheme reach no good copy.
func TestStatusPageSaysWhatTheRedirectorOffers(t *testing.T) {
	t.Parallel()
	w := world.NewOfferWorld(t)
	srv := world.ServePage(t, web.Options{Reporter: report.New(w.Pool(), nil)})

	code, body, _ := world.Get(t, srv.URL+"/")
	if code != 200 {
		t.Fatalf("/: %d", code)
	}
	for _, want := range []string{"never offered by the redirector: no region (geoip_mirror_region_map)",
		"never offered by the redirector: wrong scheme", "never verified by sentry"} {
		if !strings.Contains(body, want) {
			t.Errorf("/ does not say %q", want)
		}
	}
	code, body, _ = world.Get(t, srv.URL+"/releases/1.5")
	if code != 200 {
		t.Fatalf("/releases/1.5: %d", code)
	}
	for _, want := range []string{"1 of the 3 mirrors the redirector can offer for it (5 active)", "<strong>50%</strong>",
		"not offered: no region", "Firefox-1.5-SSL <span class=\"muted\">(ssl_only: https:// mirrors only)</span>",
		"Locations without a good copy", "<td>https</td><td>Firefox-1.5-SSL</td><td>" + world.PathLinux + "</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("/releases/1.5 does not say %q", want)
		}
	}
	code, body, _ = world.Get(t, srv.URL+"/mirrors/dead")
	if code != 200 || !strings.Contains(body, "never verified by sentry") {
		t.Errorf("/mirrors/dead: %d, never verified not said", code)
	}
}
