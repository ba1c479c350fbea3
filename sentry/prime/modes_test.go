package prime_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestPrimeTriggerAndPassiveMirrors(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	trig, err := localmirror.NewTrigger("trig", w.Rel, []byte(d.Config.Trigger.Secret), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trig.Close() })
	tid := w.AddMirror(t, "trig", trig.URL, &factory.MirrorSettingsOpts{PrimeMode: "trigger", TriggerURL: trig.TriggerURL})
	pas, err := localmirror.NewPassive("passive", w.Rel, 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pas.Close() })
	pid := w.AddMirror(t, "passive", pas.URL, &factory.MirrorSettingsOpts{PrimeMode: "passive"})
	w.Static(t, "good")

	rep := w.Prime(t)
	if good, rejected := trig.Triggers(); good != 1 || rejected != 0 {
		t.Errorf("trigger mirror got %d good and %d rejected triggers", good, rejected)
	}
	var body struct {
		Release string   `json:"release"`
		Files   []string `json:"files"`
	}
	if err := json.Unmarshal(trig.LastTrigger(), &body); err != nil || body.Release != "1.5" || len(body.Files) != 4 {
		t.Errorf("trigger body %s (%v)", trig.LastTrigger(), err)
	}
	for _, name := range []string{"trig", "passive"} {
		if s := world.MirrorSums(t, rep, name); s.State != "ok" || s.FilesOK != 4 {
			t.Errorf("%s: %+v", name, s)
		}
	}
	marks := w.Marks(t)
	for _, id := range []int{tid, pid} {
		for _, loc := range []int{w.LocWin, w.LocLin} {
			if marks[loc][id] != world.Good {
				t.Errorf("mirror %d location %d: %+v", id, loc, marks[loc][id])
			}
		}
	}
}

func TestPrimePassiveNeverSyncedIsNotPrimed(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	d.Config.Prime.Deadline = config.Duration(100 * time.Millisecond)
	empty, err := localmirror.NewPassive("lazy", &localmirror.Release{Name: "1.5", Dir: w.Rel.Dir}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { empty.Close() })
	id := w.AddMirror(t, "lazy", empty.URL, &factory.MirrorSettingsOpts{PrimeMode: "passive"})
	w.Static(t, "good")
	rep := w.Prime(t)
	s := world.MirrorSums(t, rep, "lazy")
	if s.Failures["not_primed"] != 4 {
		t.Errorf("summary %+v", s)
	}
	if m := w.Marks(t)[w.LocWin][id]; m != world.Off {
		t.Errorf("not primed location: %+v", m)
	}
}

// TestUnusableSettingsFailAtOnce: a trigger mirror whose trigger_url is not
// a URL is not contacted nor polled: misconfigured, with the reason in the
// summary and in sentry_log, nothing marked; the others are primed.
func TestUnusableSettingsFailAtOnce(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	d.Config.Prime.Deadline = config.Duration(time.Hour) // polling it would never end the test
	good, _ := w.Static(t, "good")
	bad, err := localmirror.NewStatic("bad", w.Rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bad.Close() })
	badID := w.AddMirror(t, "bad", bad.URL, &factory.MirrorSettingsOpts{PrimeMode: "trigger", TriggerURL: "mirror.example.org/hook?token=S3cr3tT0ken"})
	rep, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	byName := map[string]string{}
	for _, m := range rep.Mirrors {
		byName[m.Name] = m.State + ": " + m.Note
	}
	if !strings.HasPrefix(byName["bad"], "misconfigured: sentry_mirror_settings.trigger_url is not an absolute") ||
		!strings.HasPrefix(byName["good"], "ok") || strings.Contains(byName["bad"], "S3cr3t") {
		t.Errorf("summary: %v", byName)
	}
	if n := bad.Stats().Requests; n != 0 || good.Stats().Requests == 0 {
		t.Errorf("bad asked %d times, good %d", n, good.Stats().Requests)
	}
	var reason string
	if err := w.Pool().QueryRow(context.Background(), `SELECT reason FROM sentry_log WHERE mirror_id = $1`, badID).Scan(&reason); err != nil ||
		!strings.Contains(reason, "trigger_url is not an absolute") {
		t.Errorf("sentry_log of bad: %q %v", reason, err)
	}
	for loc, byMirror := range w.Marks(t) {
		if _, ok := byMirror[badID]; ok {
			t.Errorf("location %d marked on the misconfigured mirror", loc)
		}
	}
}
