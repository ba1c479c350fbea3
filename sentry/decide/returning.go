package decide

import "time"

// RehashOnReturn says whether a sweep must hash a file of a mirror whose
// offer was suspended at suspendedAt (zero: it is not) before offering it
// again: it was not hashed since — strictly after the suspension; a hash
// at its very instant is not since, as for the verifications that count
// (store's verifiedSince, the rule of a returning mirror). Any sweep,
// light or deep, hashes such files once the window is over.
func RehashOnReturn(hashedAt, suspendedAt time.Time) bool {
	return !suspendedAt.IsZero() && !hashedAt.After(suspendedAt)
}

// Returned says whether a suspended mirror's return is complete after a
// sweep: the window is over, the mirror answered, and no file is left
// that was neither hashed since its suspension nor found missing or wrong
// (left counts those).
func Returned(inWindow, reachable bool, left int) bool {
	return !inWindow && reachable && left == 0
}
