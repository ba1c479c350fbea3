package checks

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestAllKindsMatchesDesign(t *testing.T) {
	// docs/CONTRACTS.md, section 5 (Failure kinds), in order, plus the two
	// successes.
	want := []string{"ok", "unchanged", "not_found", "forbidden", "size_mismatch",
		"checksum_mismatch", "timeout", "connect", "dns", "tls", "http_status",
		"redirect", "too_large", "truncated", "not_primed", "internal"}
	var got []string
	for _, k := range AllKinds() {
		got = append(got, string(k))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("AllKinds() = %v, want %v", got, want)
	}
	// A fresh slice every call.
	a := AllKinds()
	a[0] = "mangled"
	if AllKinds()[0] != KindOK {
		t.Fatal("AllKinds returned shared storage")
	}
}

func TestKindGroups(t *testing.T) {
	tests := []struct {
		k                             Kind
		failed, definitive, transient bool
	}{
		{KindOK, false, false, false},
		{KindUnchanged, false, false, false},
		{KindNotFound, true, true, false},
		{KindForbidden, true, true, false},
		{KindSizeMismatch, true, true, false},
		{KindChecksumMismatch, true, true, false},
		{KindTooLarge, true, true, false},
		{KindNotPrimed, true, true, false},
		{KindTimeout, true, false, true},
		{KindConnect, true, false, true},
		{KindDNS, true, false, true},
		{KindTLS, true, false, true},
		{KindHTTPStatus, true, false, true},
		{KindRedirect, true, false, true},
		{KindTruncated, true, false, true},
		{KindInternal, true, false, false},
		{Kind("bogus"), true, false, false},
	}
	seen := map[Kind]bool{}
	for _, tt := range tests {
		seen[tt.k] = true
		if got := tt.k.Failed(); got != tt.failed {
			t.Errorf("%s.Failed() = %v, want %v", tt.k, got, tt.failed)
		}
		if got := tt.k.Definitive(); got != tt.definitive {
			t.Errorf("%s.Definitive() = %v, want %v", tt.k, got, tt.definitive)
		}
		if got := tt.k.Transient(); got != tt.transient {
			t.Errorf("%s.Transient() = %v, want %v", tt.k, got, tt.transient)
		}
	}
	for _, k := range AllKinds() {
		if !seen[k] {
			t.Errorf("kind %s not covered by this table", k)
		}
		if k.Definitive() && k.Transient() {
			t.Errorf("%s is both definitive and transient", k)
		}
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range AllKinds() {
		got, err := ParseKind(string(k))
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %q, %v", k, got, err)
		}
		if !k.Valid() {
			t.Errorf("%s.Valid() = false", k)
		}
	}
	for _, s := range []string{"", "OK", "Not_Found", "not found", "ok ", "error"} {
		if _, err := ParseKind(s); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("ParseKind(%q) error = %v, want ErrUnknownKind", s, err)
		}
	}
}

func TestKindText(t *testing.T) {
	b, err := json.Marshal(map[string]Kind{"k": KindChecksumMismatch})
	if err != nil || string(b) != `{"k":"checksum_mismatch"}` {
		t.Fatalf("marshal = %s, %v", b, err)
	}
	var v struct{ K Kind }
	if err := json.Unmarshal([]byte(`{"K":"dns"}`), &v); err != nil || v.K != KindDNS {
		t.Fatalf("unmarshal = %q, %v", v.K, err)
	}
	if err := json.Unmarshal([]byte(`{"K":"down"}`), &v); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("unmarshal of an unknown kind: %v, want ErrUnknownKind", err)
	}
	if _, err := json.Marshal(Kind("typo")); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("marshal of an unknown kind: %v, want ErrUnknownKind", err)
	}
}
