package sweep

import (
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
	"github.com/mirrorsentry/sentry/sentry/release"
)

// Report is what a sweep found, read from its work rows.
type Report struct {
	RunID      int64     `json:"run_id"`
	Kind       string    `json:"kind"` // sweep or deep_sweep
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Releases   []string  `json:"releases"`
	Files      int       `json:"files"` // files behind the locations of active products
	// Withdrawn are the locations of active products whose files left
	// their release's manifest: taken off every mirror.
	Withdrawn []release.Unresolved `json:"withdrawn_locations"`
	// ManifestsRejected are the releases whose manifest changed and was
	// refused, its signature not verifying (releases.signature): the
	// sweep checked them by the manifest it knew, and used nothing of the
	// new one.
	ManifestsRejected []release.Rejection `json:"manifests_rejected"`
	Mirrors           []MirrorSums        `json:"mirrors"`
}

// MirrorSums is one mirror's line of a sweep report.
type MirrorSums struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	Reachable bool   `json:"reachable"`
	// Checked files: OK (present, size right, hash right when hashed),
	// Unchanged (a 304 to a conditional request), Failed.
	Checked   int `json:"checked"`
	OK        int `json:"ok"`
	Unchanged int `json:"unchanged"`
	Failed    int `json:"failed"`
	Hashed    int `json:"hashed"`
	// Withheld counts the locations off until their files are hashed
	// (present, not verified where they must be: sweep.catch_up_bytes).
	Withheld int `json:"withheld,omitempty"`
	// Listed counts the files an rsync listing confirmed as known, without
	// a request (RsyncListed: the mirror was listed over rsync).
	Listed       int                 `json:"listed,omitempty"`
	RsyncListed  bool                `json:"rsync_listed,omitempty"`
	Failures     map[checks.Kind]int `json:"failures"`
	FirstFailure string              `json:"first_failure,omitempty"`
	// SweepFailed: the mirror failed this sweep as a whole (unreachable,
	// or nothing present and only transient failures), from at least a
	// quorum of vantage points.
	SweepFailed bool `json:"sweep_failed"`
	// State is the mirror's state after the sweep; StateChanged says it
	// changed in this sweep.
	State        string `json:"state"`
	StateChanged bool   `json:"state_changed"`
	// Condition is the word every view gives the mirror after the sweep:
	// its state, except that an up mirror with locations off is
	// "degraded"; LocationsOff counts them and OffLocations names the
	// first ones (store.OffLocationsSQL).
	Condition    string   `json:"condition"`
	LocationsOff int      `json:"locations_off"`
	OffLocations []string `json:"off_locations,omitempty"`
	// FailingFrom and CheckedFrom are the vantage points the mirror failed
	// from, and those that checked it; Partial: it failed from some, fewer
	// than the quorum, so the sweep did not count against it.
	FailingFrom []string `json:"failing_from"`
	CheckedFrom []string `json:"checked_from"`
	Partial     bool     `json:"partial"`
	Note        string   `json:"note,omitempty"`
	Seconds     float64  `json:"seconds"`
	AdminSums
}

// AdminSums is what a sweep's report says of a mirror for its admin.
type AdminSums struct {
	// BrokenFamilies are the families it failed over while reached over
	// another (state.family_policy says what that did).
	BrokenFamilies []string `json:"broken_families,omitempty"`
	// Maintenance is the window it was in ("" for none): not checked.
	Maintenance string `json:"maintenance,omitempty"`
	// Returning: its offer was suspended (a maintenance window), and this
	// sweep re-verified it; ReturnLeft counts the files still to hash
	// before it is offered again (0: it returned).
	Returning  bool `json:"returning,omitempty"`
	ReturnLeft int  `json:"return_left,omitempty"`
}

// Summarize reads a finished sweep into its report. names names the
// mirrors whose rows were never done.
func Summarize(fin *engine.Finished, names map[int]string) (*Report, error) {
	var p params
	if err := mirrorjob.ReadParams(fin.Run, &p); err != nil {
		return nil, err
	}
	rep := &Report{RunID: fin.Run.ID, Kind: fin.Run.Kind, Outcome: fin.Outcome, Reason: fin.Reason,
		StartedAt: fin.Run.StartedAt, FinishedAt: time.Now(), Releases: mirrorjob.NonNil(p.Names), Files: p.Files,
		Withdrawn: mirrorjob.NonNil(p.Withdrawn), ManifestsRejected: mirrorjob.NonNil(p.Rejected)}
	var err error
	rep.Mirrors, err = mirrorjob.Lines(fin.Rows, names, func(res rowResult) (MirrorSums, bool) {
		return res.Sums.nonNil(), !res.Gone
	}, func(id int, name string) MirrorSums {
		return MirrorSums{ID: id, Name: name, Note: "not checked: the sweep ended first"}.nonNil()
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// nonNil is s with its map and lists made, so that none is null in the
// report's JSON.
func (s MirrorSums) nonNil() MirrorSums {
	if s.Failures == nil {
		s.Failures = map[checks.Kind]int{}
	}
	s.FailingFrom, s.CheckedFrom = mirrorjob.NonNil(s.FailingFrom), mirrorjob.NonNil(s.CheckedFrom)
	return s
}
