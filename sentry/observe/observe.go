// Package observe is how primes and sweeps tell the rest of sentry what
// they do as they do it: every check, mirror state change, guard activation
// and run end, and (to a TLSObserver) every certificate warning. The
// metrics (package metrics), the webhooks and the mail (package notify)
// and a command's progress line (package cli) implement Observer.
package observe

import (
	"time"

	"github.com/mirrorsentry/sentry/checks"
)

// Observer is told what primes and sweeps do, as they do it: the metrics
// (package metrics), the webhooks and the mail (package notify) and a
// command's progress line implement it. Methods are called from many goroutines at once and must
// return at once: an observer that waits on the network queues instead.
type Observer interface {
	// CheckDone: one check was made and handed to the recorder. bytes is
	// what was verified by hashing (0 for a HEAD or a failure).
	CheckDone(c CheckEvent)
	// StateChanged: a sweep changed a mirror's state (hysteresis); the
	// change is already recorded in the database.
	StateChanged(e StateChangeEvent)
	// GuardHeld: the mass-failure guard held back marking in a run.
	GuardHeld(e GuardEvent)
	// RunFinished: a prime or sweep ended, with its recorded outcome.
	RunFinished(e RunEvent)
}

// CheckEvent is one check, as observers see it.
type CheckEvent struct {
	RunKind  string // prime, sweep, deep_sweep
	RunID    int64
	Mirror   string
	MirrorID int
	// Path is the file's path in its release ("" for a check of the
	// mirror itself); At is when the check was made.
	Path   string
	At     time.Time
	Result checks.Kind
	Hashed bool
	// Sampled: the check compared blocks of the file with the master's
	// digests (of them, BytesVerified).
	Sampled bool
	// Routine: the check found what was known already, and is only
	// counted (no row of its own in sentry_checks).
	Routine bool
	// BytesVerified is the size of a file whose checksum was verified.
	BytesVerified int64
}

// StateChangeEvent is a change of a mirror's state.
type StateChangeEvent struct {
	At       time.Time `json:"at"`
	RunID    int64     `json:"run_id"`
	MirrorID int       `json:"mirror_id"`
	Mirror   string    `json:"mirror"`
	BaseURL  string    `json:"baseurl"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Reason   string    `json:"reason"`
}

// GuardEvent is an activation of the mass-failure guard.
type GuardEvent struct {
	At      time.Time `json:"at"`
	RunID   int64     `json:"run_id"`
	RunKind string    `json:"run_kind"`
	// Mirrors counts the mirrors whose marking was held back.
	Mirrors int    `json:"mirrors"`
	Reason  string `json:"reason"`
}

// RunEvent is the end of a prime or sweep.
type RunEvent struct {
	RunID    int64     `json:"run_id"`
	Kind     string    `json:"run_kind"` // prime, sweep, deep_sweep
	Outcome  string    `json:"outcome"`  // completed, guarded, interrupted, failed
	Reason   string    `json:"reason"`   // as recorded in sentry_runs.reason
	Started  time.Time `json:"started_at"`
	Finished time.Time `json:"finished_at"`
}

// All fans events out to several observers; nil entries are skipped.
func All(obs ...Observer) Observer {
	var out multiObserver
	for _, o := range obs {
		if o != nil {
			out = append(out, o)
		}
	}
	return out
}

type multiObserver []Observer

func (m multiObserver) CheckDone(c CheckEvent) {
	for _, o := range m {
		o.CheckDone(c)
	}
}

func (m multiObserver) StateChanged(e StateChangeEvent) {
	for _, o := range m {
		o.StateChanged(e)
	}
}

func (m multiObserver) GuardHeld(e GuardEvent) {
	for _, o := range m {
		o.GuardHeld(e)
	}
}

func (m multiObserver) RunFinished(e RunEvent) {
	for _, o := range m {
		o.RunFinished(e)
	}
}

// Nop is an Observer that ignores everything.
var Nop Observer = multiObserver(nil)

// Or returns o, or Nop when o is nil.
func Or(o Observer) Observer {
	if o == nil {
		return Nop
	}
	return o
}

// tell hands e to o through method of the optional interface T
// (TLSObserver, ManifestObserver, AliasObserver), when o implements T:
// an observer that does not want such events is not told.
func tell[T, E any](o Observer, e E, method func(T, E)) {
	if t, ok := o.(T); ok {
		method(t, e)
	}
}

// tellEach tells each of several observers (All) of e, with the teller of
// its kind (TLSWarned, ManifestRejected, AliasPromoted).
func tellEach[E any](m multiObserver, e E, teller func(Observer, E)) {
	for _, o := range m {
		teller(o, e)
	}
}

// VerifiedBytes is what a check verified by hashing: the whole file, or
// the blocks a sampled check compared.
func VerifiedBytes(r checks.Result) int64 {
	switch {
	case r.Kind != checks.KindOK:
		return 0
	case r.Hashed && r.Bytes > 0:
		return r.Bytes
	case r.Sampled > 0:
		return r.SampledBytes
	}
	return 0
}

// TLSEvent is a certificate warning: an https mirror's certificate ends
// within checks.tls_expiry_warning. It is raised once per certificate.
type TLSEvent struct {
	At          time.Time `json:"at"`
	RunID       int64     `json:"run_id"`
	MirrorID    int       `json:"mirror_id"`
	Mirror      string    `json:"mirror"`
	BaseURL     string    `json:"baseurl"`
	Host        string    `json:"host"`
	Issuer      string    `json:"issuer"`
	Names       []string  `json:"names"`
	NotAfter    time.Time `json:"not_after"`
	Fingerprint string    `json:"fingerprint"`
	Reason      string    `json:"reason"`
}

// TLSObserver is an Observer that wants certificate warnings too (the
// webhooks and the mail do; the metrics read them from the database).
type TLSObserver interface {
	TLSWarning(e TLSEvent)
}

// TLSWarned tells o of a certificate warning, when o wants to know.
func TLSWarned(o Observer, e TLSEvent) { tell(o, e, TLSObserver.TLSWarning) }

// TLSWarning implements TLSObserver for every observer that does.
func (m multiObserver) TLSWarning(e TLSEvent) { tellEach(m, e, TLSWarned) }

// ManifestEvent is a changed manifest a sweep refused: its signature
// (releases.signature) did not verify, so the manifest sentry knows stays
// in force and nothing of the new one is used.
type ManifestEvent struct {
	At      time.Time `json:"at"`
	RunID   int64     `json:"run_id"`
	RunKind string    `json:"run_kind"`
	Release string    `json:"release"`
	URL     string    `json:"manifest_url"`
	Reason  string    `json:"reason"`
}

// ManifestObserver is an Observer that wants to hear of refused manifests
// (the webhooks do).
type ManifestObserver interface {
	ManifestRejected(e ManifestEvent)
}

// ManifestRejected tells o of a refused manifest, when o wants to know.
func ManifestRejected(o Observer, e ManifestEvent) { tell(o, e, ManifestObserver.ManifestRejected) }

// ManifestRejected implements ManifestObserver for every observer that
// does.
func (m multiObserver) ManifestRejected(e ManifestEvent) { tellEach(m, e, ManifestRejected) }
