package sentry_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// TestTriggerMirrorWithoutSecretIsAConfigError: with a trigger mirror and
// no trigger secret, prime, sweep and the daemon refuse to start, naming
// the mirror and what to set.
func TestTriggerMirrorWithoutSecretIsAConfigError(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	trig, err := localmirror.NewTrigger("trig", w.Rel, []byte("x"), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trig.Close() })
	w.AddMirror(t, "trig", trig.URL, &factory.MirrorSettingsOpts{PrimeMode: "trigger", TriggerURL: trig.TriggerURL})
	d.Config.Trigger.Secret = ""
	d.Config.HTTP.Listen = "127.0.0.1:0"
	for what, run := range map[string]func() error{
		"prime": func() error {
			_, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
			return err
		},
		"sweep": func() error { _, err := sentry.Sweep(context.Background(), d, sentry.SweepOptions{}); return err },
		"run":   func() error { return sentry.RunDaemon(context.Background(), d, sentry.DaemonOptions{}) },
	} {
		err := run()
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "trig") || !strings.Contains(err.Error(), "SENTRY_TRIGGER_SECRET") {
			t.Errorf("%s: %v, want a configuration error naming trig and the secret", what, err)
		}
	}
	if n := w.CountRuns(t, "prime") + w.CountRuns(t, "sweep"); n != 0 || trig.Stats().Requests != 0 {
		t.Errorf("%d runs recorded, the mirror asked %d times", n, trig.Stats().Requests)
	}
}

// TestUnusableSettingIsLoggedNotFatal: a setting written by hand that
// `sentry mirror set` would refuse (a purge URL giving no absolute URL)
// is logged at the start of a run, naming the mirror and the setting; the
// run goes on, and the mirror with it.
func TestUnusableSettingIsLoggedNotFatal(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	s := world.Static(t, "handmade", w.Rel)
	w.AddMirror(t, "handmade", s.URL, &factory.MirrorSettingsOpts{PurgeMethod: "PURGE", PurgeURL: "/purge{path}"})
	if rep := w.Prime(t); rep.Outcome != "completed" || world.MirrorSums(t, rep, "handmade").FilesOK == 0 {
		t.Errorf("prime: %s %s", rep.Outcome, rep.Reason)
	}
	logs := w.Logs.String()
	if !strings.Contains(logs, "a mirror setting is unusable") || !strings.Contains(logs, "mirror=handmade") ||
		!strings.Contains(logs, "sentry_mirror_settings.purge_url") {
		t.Errorf("the run's log does not name the mirror and its setting:\n%s", logs)
	}
}
