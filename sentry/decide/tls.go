package decide

import "time"

// TLSWarning says whether a certificate valid until notAfter deserves a
// warning at now (checks.tls_expiry_warning: within): it is still valid,
// and ends within that long. An expired certificate is no warning but a
// failure (the check fails with tls).
func TLSWarning(notAfter, now time.Time, within time.Duration) bool {
	return now.Before(notAfter) && notAfter.Sub(now) < within
}
