package mirrorjob

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestJudgeFamilies(t *testing.T) {
	t.Parallel()
	over := func(f checks.Family, k checks.Kind, detail string) FamilyCheck {
		return FamilyCheck{Family: f, Result: checks.Result{Kind: k, Detail: detail}}
	}
	tests := []struct {
		name       string
		outs       []FamilyCheck
		speaker    int
		failedOver checks.Family
		kind       checks.Kind
		detail     string
	}{
		{"right over both: the first family's word", []FamilyCheck{over(checks.IPv4, checks.KindOK, "v4"), over(checks.IPv6, checks.KindUnchanged, "v6")},
			0, "", checks.KindOK, "v4"},
		{"missing over IPv6 only", []FamilyCheck{over(checks.IPv4, checks.KindOK, ""), over(checks.IPv6, checks.KindNotFound, "HTTP 404")},
			0, checks.IPv6, checks.KindNotFound, "over IPv6 only (served right over IPv4): HTTP 404"},
		{"wrong over IPv4 only: IPv6's check speaks", []FamilyCheck{over(checks.IPv4, checks.KindSizeMismatch, "size 3, want 5"),
			over(checks.IPv6, checks.KindOK, "")}, 1, checks.IPv4, checks.KindSizeMismatch, "over IPv4 only (served right over IPv6): size 3, want 5"},
		{"failing over both: IPv4's word", []FamilyCheck{over(checks.IPv4, checks.KindNotFound, "HTTP 404"),
			over(checks.IPv6, checks.KindTimeout, "timeout")}, 0, "", checks.KindNotFound, "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := JudgeFamilies(tt.outs)
			if v.Speaker != tt.speaker || v.FailedOver != tt.failedOver || v.Result.Kind != tt.kind || v.Result.Detail != tt.detail {
				t.Errorf("got speaker %d, over %q, %s %q", v.Speaker, v.FailedOver, v.Result.Kind, v.Result.Detail)
			}
		})
	}
}

// TestSpeak: the speaker of a file failing over one family alone records
// that failure with its family, never only counted; the other checks are
// beside it.
func TestSpeak(t *testing.T) {
	t.Parallel()
	v := JudgeFamilies([]FamilyCheck{{checks.IPv4, checks.Result{Kind: checks.KindOK}},
		{checks.IPv6, checks.Result{Kind: checks.KindNotFound, Detail: "HTTP 404"}}})
	var c4, c6 store.Check
	c4.Routine, c6.Routine = true, true
	v.Speak(&c4, 0, checks.IPv4)
	v.Speak(&c6, 1, checks.IPv6)
	if c4.Family != "ipv4" || c4.Beside || c4.Routine || c4.FailedOver != "ipv6" || c4.FailedKind != "not_found" ||
		c4.FailedDetail != "over IPv6 only (served right over IPv4): HTTP 404" {
		t.Errorf("the speaker: %+v", c4)
	}
	if c6.Family != "ipv6" || !c6.Beside || !c6.Routine || c6.FailedOver != "" {
		t.Errorf("the check beside it: %+v", c6)
	}
	right := JudgeFamilies([]FamilyCheck{{checks.IPv4, checks.Result{Kind: checks.KindOK}}, {checks.IPv6, checks.Result{Kind: checks.KindOK}}})
	var c store.Check
	c.Routine = true
	right.Speak(&c, 0, checks.IPv4)
	if c.Beside || !c.Routine || c.FailedOver != "" || c.Family != "ipv4" {
		t.Errorf("a file right over both, its first family's check: %+v", c)
	}
}

func TestFileFamilies(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		found map[string]string
		want  string
	}{
		{nil, ""},
		{map[string]string{"ipv4": ""}, ""},
		{map[string]string{"ipv6": "", "ipv4": ""}, "ipv4 ipv6"},
		{map[string]string{"ipv4": "", "ipv6": "connect: refused"}, ""}, // one family broken: the files over the other (Reach.Pin)
	} {
		var got []string
		for _, f := range FileFamilies(tt.found) {
			got = append(got, string(f))
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("FileFamilies(%v) = %v, want %q", tt.found, got, tt.want)
		}
	}
}

// TestReachOver: a host resolving to 127.0.0.1 and ::1, with a server on
// 127.0.0.1 only, answers over IPv4 and is broken over IPv6 (nothing
// listens there, or the host has no IPv6 at all): its files are pinned to
// IPv4, and each check was handed over with its family. A vantage point
// reaching IPv4 only checks it once (Families: nil).
func TestReachOver(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	if ln, err := net.Listen("tcp6", net.JoinHostPort("::1", u.Port())); err == nil {
		ln.Close() // free on ::1: connections there are refused
	} else if !strings.Contains(err.Error(), "address already in use") {
		t.Logf("no IPv6 loopback (%v): connections over IPv6 fail all the same", err)
	} else {
		t.Skipf("[::1]:%s is taken", u.Port())
	}
	c, err := checks.NewClient(checks.ClientOptions{UserAgent: "sentry-test", Retries: checks.NoRetries,
		Resolver: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	base := "http://dual.test:" + u.Port() + "/pub"
	ctx := context.Background()
	if f := Families(ctx, c, []string{"ipv4"}, base); f != nil {
		t.Errorf("a vantage point reaching IPv4 only: %v, want one check", f)
	}
	fams := Families(ctx, c, []string{"ipv4", "ipv6"}, base)
	if !slices.Equal(fams, []checks.Family{checks.IPv4, checks.IPv6}) {
		t.Fatalf("Families: %v", fams)
	}
	var mu sync.Mutex
	var recorded []string
	r, ok := ReachOver(ctx, c, base, fams, func(ctx context.Context, res checks.Result) {
		mu.Lock()
		defer mu.Unlock()
		recorded = append(recorded, string(checks.FamilyOf(ctx))+" "+string(res.Kind))
	})
	if !ok || r.Result.Kind != checks.KindOK || r.Pin != checks.IPv4 || r.Found["ipv4"] != "" || r.Found["ipv6"] == "" {
		t.Fatalf("ReachOver: ok %v, %s, pin %q, found %v", ok, r.Result.Kind, r.Pin, r.Found)
	}
	if b := r.Broken(fams); !slices.Equal(b, []string{"ipv6"}) {
		t.Errorf("broken over %v, want [ipv6]", b)
	}
	if len(recorded) != 2 || recorded[0] != "ipv4 ok" || !strings.HasPrefix(recorded[1], "ipv6 ") || recorded[1] == "ipv6 ok" {
		t.Errorf("recorded %v", recorded)
	}
	if FileFamilies(r.Found) != nil {
		t.Errorf("files over each family of a mirror broken over one")
	}
}
