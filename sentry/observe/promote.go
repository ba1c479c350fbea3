package observe

import "time"

// AliasEvent is an alias moved to a release's product: the release went
// live (package promote).
type AliasEvent struct {
	At      time.Time `json:"at"`
	Alias   string    `json:"alias"`
	From    string    `json:"from"` // "" when the alias named none
	To      string    `json:"to"`
	Release string    `json:"release"`
	// By is what moved it: prime, sweep (their judgement or a mirror's
	// marks), or command (`sentry promote`); RunID the run, 0 for none.
	By     string `json:"by"`
	RunID  int64  `json:"run_id,omitempty"`
	Forced bool   `json:"forced"`
	// MinUptake is the lowest eligible uptake of the product's locations
	// when it was moved (nil: a location with none).
	MinUptake *float64 `json:"min_uptake"`
	Reason    string   `json:"reason"`
}

// AliasObserver is an Observer that wants to know of aliases moved (the
// webhooks do; the metrics read the moves from the database).
type AliasObserver interface {
	AliasPromoted(e AliasEvent)
}

// AliasPromoted tells o of an alias moved, when o wants to know.
func AliasPromoted(o Observer, e AliasEvent) { tell(o, e, AliasObserver.AliasPromoted) }

// AliasPromoted implements AliasObserver for every observer that does.
func (m multiObserver) AliasPromoted(e AliasEvent) { tellEach(m, e, AliasPromoted) }
