package sweep

import (
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestJudgeFamilies(t *testing.T) {
	t.Parallel()
	over := func(f checks.Family, k checks.Kind, verified bool, detail string) familyCheck {
		return familyCheck{family: f, checked: checked{res: checks.Result{Kind: k, Detail: detail}, fr: fileResult{kind: k, verified: verified}}}
	}
	tests := []struct {
		name       string
		outs       []familyCheck
		speaker    int
		failedOver checks.Family
		kind       checks.Kind
		verified   bool
		detail     string
	}{
		{"right over both, verified over both", []familyCheck{over(checks.IPv4, checks.KindOK, true, ""), over(checks.IPv6, checks.KindUnchanged, true, "")},
			0, "", checks.KindOK, true, ""},
		{"right over both, not verified over IPv6: not verified", []familyCheck{over(checks.IPv4, checks.KindOK, true, ""),
			over(checks.IPv6, checks.KindOK, false, "")}, 0, "", checks.KindOK, false, ""},
		{"missing over IPv6 only", []familyCheck{over(checks.IPv4, checks.KindOK, true, ""), over(checks.IPv6, checks.KindNotFound, false, "HTTP 404")},
			0, checks.IPv6, checks.KindNotFound, false, "over IPv6 only (served right over IPv4): HTTP 404"},
		{"wrong over IPv4 only: IPv6's check speaks", []familyCheck{over(checks.IPv4, checks.KindSizeMismatch, false, "size 3, want 5"),
			over(checks.IPv6, checks.KindOK, true, "")}, 1, checks.IPv4, checks.KindSizeMismatch, false, "over IPv4 only (served right over IPv6): size 3"},
		{"failing over both: IPv4's word", []familyCheck{over(checks.IPv4, checks.KindNotFound, false, "HTTP 404"),
			over(checks.IPv6, checks.KindTimeout, false, "timeout")}, 0, "", checks.KindNotFound, false, "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judgeFamilies(tt.outs)
			if v.Speaker != tt.speaker || v.FailedOver != tt.failedOver || v.Result.Kind != tt.kind || v.fr.kind != tt.kind ||
				v.fr.verified != tt.verified || !strings.HasPrefix(v.Result.Detail, tt.detail) {
				t.Errorf("got speaker %d, over %q, %s %q, verified %v", v.Speaker, v.FailedOver, v.Result.Kind, v.Result.Detail, v.fr.verified)
			}
		})
	}
}

func TestPrevOver(t *testing.T) {
	t.Parallel()
	missingOver6 := store.FileState{Result: "not_found", FailedOver: "ipv6", VerifiedElsewhere: true, ETag: `"v4"`, Size: 5}
	if p := prevOver(missingOver6, checks.IPv4, true); p.Result != "ok" || !p.Verified || p.ETag != `"v4"` {
		t.Errorf("over the family that serves it: %+v; want present, verified, with its validators", p)
	}
	if p := prevOver(missingOver6, checks.IPv6, false); p.Result != "not_found" || p.Verified || p.ETag != "" || p.Size != 5 {
		t.Errorf("over the family it fails over: %+v; want failing, compared by size only", p)
	}
	right := store.FileState{Result: "ok", Verified: true, ETag: `"v4"`, LastModified: "x", Size: 5}
	if p := prevOver(right, checks.IPv6, false); p.Result != "ok" || !p.Verified || p.ETag != "" || p.LastModified != "" {
		t.Errorf("a right file over another family: %+v; want its state without the main family's validators", p)
	}
}
