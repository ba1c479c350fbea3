package observe_test

import (
	"slices"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

// recorder records what it is told, by kind of event.
type recorder struct {
	name string
	got  *[]string
}

func (r recorder) tell(what string) { *r.got = append(*r.got, r.name+" "+what) }

func (r recorder) CheckDone(c observe.CheckEvent)          { r.tell("check " + c.Path) }
func (r recorder) StateChanged(e observe.StateChangeEvent) { r.tell("state " + e.To) }
func (r recorder) GuardHeld(e observe.GuardEvent)          { r.tell("guard " + e.Reason) }
func (r recorder) RunFinished(e observe.RunEvent)          { r.tell("run " + e.Outcome) }

// tlsRecorder also wants certificate warnings.
type tlsRecorder struct{ recorder }

func (r tlsRecorder) TLSWarning(e observe.TLSEvent) { r.tell("tls " + e.Host) }

// TestAllTellsEveryObserverInOrder: All fans every event out to each of
// its observers, in the order given, skipping nil ones; a certificate
// warning reaches only those that want one.
func TestAllTellsEveryObserverInOrder(t *testing.T) {
	var got []string
	all := observe.All(recorder{"a", &got}, nil, tlsRecorder{recorder{"b", &got}})
	all.CheckDone(observe.CheckEvent{Path: "f"})
	all.StateChanged(observe.StateChangeEvent{To: "down"})
	all.GuardHeld(observe.GuardEvent{Reason: "r"})
	all.RunFinished(observe.RunEvent{Outcome: "completed"})
	observe.TLSWarned(all, observe.TLSEvent{Host: "h", NotAfter: time.Now()})
	want := []string{"a check f", "b check f", "a state down", "b state down", "a guard r", "b guard r",
		"a run completed", "b run completed", "b tls h"}
	if !slices.Equal(got, want) {
		t.Errorf("told %q, want %q", got, want)
	}
}

// wantsAll wants every optional event: certificate warnings, refused
// manifests, aliases moved.
type wantsAll struct{ tlsRecorder }

func (r wantsAll) ManifestRejected(e observe.ManifestEvent) { r.tell("manifest " + e.Release) }
func (r wantsAll) AliasPromoted(e observe.AliasEvent)       { r.tell("alias " + e.Alias) }

// TestOptionalEventsReachThoseThatWantThem: each optional event (a
// certificate warning, a refused manifest, an alias moved) reaches, through
// All and an All within it, in order, only the observers that want it.
func TestOptionalEventsReachThoseThatWantThem(t *testing.T) {
	var got []string
	all := observe.All(recorder{"a", &got}, wantsAll{tlsRecorder{recorder{"b", &got}}},
		observe.All(tlsRecorder{recorder{"c", &got}}, wantsAll{tlsRecorder{recorder{"d", &got}}}))
	observe.TLSWarned(all, observe.TLSEvent{Host: "h"})
	observe.ManifestRejected(all, observe.ManifestEvent{Release: "1.5"})
	observe.AliasPromoted(all, observe.AliasEvent{Alias: "latest"})
	want := []string{"b tls h", "c tls h", "d tls h", "b manifest 1.5", "d manifest 1.5", "b alias latest", "d alias latest"}
	if !slices.Equal(got, want) {
		t.Errorf("told %q, want %q", got, want)
	}
}

// TestNopAndOr: Or gives an observer that can be told anything, whatever
// it was given; Nop and All of nothing ignore everything.
func TestNopAndOr(t *testing.T) {
	var got []string
	r := recorder{"r", &got}
	if o := observe.Or(r); o != observe.Observer(r) {
		t.Errorf("Or(r) = %v, want r itself", o)
	}
	for _, o := range []observe.Observer{observe.Or(nil), observe.Nop, observe.All(), observe.All(nil, nil)} {
		o.CheckDone(observe.CheckEvent{})
		o.StateChanged(observe.StateChangeEvent{})
		o.GuardHeld(observe.GuardEvent{})
		o.RunFinished(observe.RunEvent{})
		observe.TLSWarned(o, observe.TLSEvent{})
	}
	observe.TLSWarned(r, observe.TLSEvent{Host: "h"}) // r does not want them
	if len(got) != 0 {
		t.Errorf("told %q, want nothing", got)
	}
}

// TestVerifiedBytes: what a check verified is the whole file when it was
// hashed, the blocks compared when it was sampled, and nothing when it
// failed or only looked (a HEAD).
func TestVerifiedBytes(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    checks.Result
		want int64
	}{
		{"hashed", checks.Result{Kind: checks.KindOK, Hashed: true, Bytes: 70_000}, 70_000},
		{"sampled", checks.Result{Kind: checks.KindOK, Bytes: 600_000, Sampled: 32, Blocks: 128, SampledBytes: 524_288}, 524_288},
		{"a HEAD", checks.Result{Kind: checks.KindOK}, 0},
		{"an empty file hashed", checks.Result{Kind: checks.KindOK, Hashed: true}, 0},
		{"failed after reading", checks.Result{Kind: checks.KindChecksumMismatch, Hashed: true, Bytes: 70_000}, 0},
		{"failed sampling", checks.Result{Kind: checks.KindChecksumMismatch, Sampled: 1, Blocks: 128, SampledBytes: 16_384}, 0},
	} {
		if got := observe.VerifiedBytes(tt.r); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}
