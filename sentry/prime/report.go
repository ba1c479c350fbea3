package prime

import (
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
	"github.com/mirrorsentry/sentry/sentry/release"
)

// Report is what a prime found, read from its work rows: the same whoever
// worked them, and whichever process asks. `sentry prime --format json`
// prints it.
type Report struct {
	RunID      int64     `json:"run_id"`
	Release    string    `json:"release"`
	Outcome    string    `json:"outcome"` // completed, guarded, interrupted, failed
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// Joined: the run was started by another sentry (or the release hook)
	// and this one worked it too.
	Joined bool `json:"joined,omitempty"`
	// Files is the number of files in the manifest; Locations the number
	// of bouncer locations mapped onto them.
	Files           int                  `json:"files"`
	Locations       int                  `json:"locations"`
	Unresolved      []release.Unresolved `json:"unresolved_locations"`
	MissingProducts []string             `json:"missing_products"`
	Mirrors         []MirrorSums         `json:"mirrors"`
	// MasterCopy, when set, is why nothing was marked: the master's copy
	// of the release is not the manifest's (MasterCopyWrong: the release
	// is unusable), or was not read to the end.
	MasterCopy      string `json:"master_copy,omitempty"`
	MasterCopyWrong bool   `json:"master_copy_wrong,omitempty"`
}

// MirrorSums is one mirror's line of the prime summary.
type MirrorSums struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	Mode string `json:"mode"`
	// State is "ok" (every file verified), "partial" (some files failed),
	// "down" (nothing verified, only transient failures: the mirror is in
	// trouble), "misconfigured" (its settings do not let it be primed, Note
	// says why: it was not contacted) or "interrupted".
	State string `json:"state"`
	// FilesOK counts files verified in this run or, when resumed, in an
	// earlier run of the release (Resumed of them).
	FilesOK       int                 `json:"files_ok"`
	FilesFailed   int                 `json:"files_failed"`
	Resumed       int                 `json:"files_resumed"`
	BytesVerified int64               `json:"bytes_verified"`
	Failures      map[checks.Kind]int `json:"failures"`
	FirstFailure  string              `json:"first_failure,omitempty"`
	Seconds       float64             `json:"seconds"`
	// Marked says whether the bouncer tables were written for the mirror;
	// LocationsGood and LocationsBad count the locations marked good and
	// not good.
	Marked        bool   `json:"marked"`
	LocationsGood int    `json:"locations_good"`
	LocationsBad  int    `json:"locations_bad"`
	Note          string `json:"note,omitempty"`
	// FilesSampled counts the files of FilesOK this run verified by
	// sampling their blocks (verify.mode sampled); the others were hashed
	// in full, or resumed. BytesVerified counts the bytes hashed: whole
	// files, and the blocks compared of sampled ones.
	FilesSampled int `json:"files_sampled"`
	// BrokenFamilies are the address families a dual-stack mirror did not
	// answer over while it answered over another: its files were checked
	// over one that answers, and state.family_policy decided the rest
	// (degraded: marked as its files say; down: judged as an unreachable
	// mirror). Note says why.
	BrokenFamilies []string `json:"broken_families,omitempty"`
	// FailedOver counts, by address family, the files of FilesFailed that
	// fail over that family alone while another serves them right
	// ("missing over IPv6 only"): their locations are off.
	FailedOver map[string]int `json:"failed_over,omitempty"`
}

// Summarize reads a finished prime into its report. names names the
// mirrors whose rows were never done (interrupted).
func Summarize(fin *engine.Finished, names map[int]string) (*Report, error) {
	var pp params
	if err := mirrorjob.ReadParams(fin.Run, &pp); err != nil {
		return nil, err
	}
	rep := &Report{
		RunID: fin.Run.ID, Release: pp.Release, Outcome: fin.Outcome, Reason: fin.Reason, StartedAt: fin.Run.StartedAt,
		FinishedAt: time.Now(), Joined: fin.Joined, Files: pp.Files, Locations: pp.Locations,
		Unresolved: mirrorjob.NonNil(pp.Unresolved), MissingProducts: mirrorjob.NonNil(pp.MissingProducts),
	}
	var err error
	rep.Mirrors, err = mirrorjob.Lines(fin.Rows, names, func(res rowResult) (MirrorSums, bool) {
		if res.Sums.Failures == nil {
			res.Sums.Failures = map[checks.Kind]int{}
		}
		if res.Master != "" && (rep.MasterCopy == "" || res.MasterWrong) {
			rep.MasterCopy, rep.MasterCopyWrong = res.Master, res.MasterWrong
		}
		return res.Sums, !res.Gone
	}, func(id int, name string) MirrorSums {
		return MirrorSums{ID: id, Name: name, State: "interrupted", Failures: map[checks.Kind]int{}}
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}
