package notify

import (
	"fmt"

	"github.com/mirrorsentry/sentry/sentry/observe"
)

// EventAliasPromoted is the event of an alias moved to a release's
// product: the release went live.
const EventAliasPromoted = "alias_promoted"

// AliasPromoted implements observe.AliasObserver: one event per move.
func (n *Notifier) AliasPromoted(e observe.AliasEvent) {
	n.enqueue(Event{Event: EventAliasPromoted, Alias: &e, ID: fmt.Sprintf("alias-%s-%s-%d", e.Alias, e.To, e.At.UnixMilli())})
}
