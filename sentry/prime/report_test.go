package prime_test

import (
	"encoding/json"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
)

func TestPrimeReportJSON(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	w.Static(t, "good")
	rep := w.Prime(t)
	buf, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"run_id", "release", "outcome", "files", "locations", "mirrors", "unresolved_locations"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, buf)
		}
	}
	if len(rep.Mirrors) != 1 || rep.Mirrors[0].Name != "good" || rep.Outcome != "completed" {
		t.Errorf("report: %s", buf)
	}
}
