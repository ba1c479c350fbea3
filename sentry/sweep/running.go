package sweep

import "errors"

// Group is the group of the sweep's kinds (engine.Kind.Group): one
// scheduled sweep, light or deep, runs at a time.
const Group = "sweep"

// ErrRunning: a scheduled sweep is still running, so another scheduled
// sweep does not start (engine.Request.Queue waits for it). The sweep's
// kinds register it as their engine.Kind.Busy: the engine's
// GroupBusyError, naming the running sweep, matches it.
var ErrRunning = errors.New("another sweep is still running")
