package sentry

import (
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"
)

// The daemon's cron schedules, as every sentry sharing them reads them.

// scheduledSlot is the scheduled time a job started at now is for: the
// latest time at or before now that spec fires. Processes sharing a cron
// spec agree on it. @every schedules are relative to each process's start,
// so for them the slot is now truncated to the interval (aligned to the
// Unix epoch).
func scheduledSlot(spec cron.Schedule, now time.Time) time.Time {
	now = now.UTC()
	if every, ok := spec.(cron.ConstantDelaySchedule); ok {
		return now.Truncate(every.Delay)
	}
	// The first firing after a point at least one period back, then walk
	// forward to the last one not after now.
	n1 := spec.Next(now)
	period := spec.Next(n1).Sub(n1)
	t := spec.Next(now.Add(-period - time.Second))
	slot := t
	for i := 0; i < 1000 && !t.After(now); i++ {
		slot = t
		t = spec.Next(t)
	}
	if slot.After(now) {
		return now.Truncate(time.Second)
	}
	return slot
}

// cronLogger adapts slog to robfig/cron's logger.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) {
	if msg == "skip" {
		c.l.Warn("sweep skipped: the previous run of this job is still going", kv...)
		return
	}
	c.l.Debug("cron: "+msg, kv...)
}

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}
