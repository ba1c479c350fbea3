package config

import ()

// Address families of checks.families.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// Policies of state.family_policy.
const (
	// PolicyDegraded: a mirror broken over one address family only stays
	// offered and is reported degraded.
	PolicyDegraded = "degraded"
	// PolicyDown: such a sweep counts against the mirror, as an
	// unreachable one does.
	PolicyDown = "down"
)

// familyProblems are those of checks.families.
func (c ChecksConfig) familyProblems(p *problemList) {
	if len(c.Families) == 0 {
		p.add("checks.families needs at least one address family this vantage point reaches: ipv4, ipv6")
	}
	seen := map[string]bool{}
	for i, f := range c.Families {
		switch {
		case f != FamilyIPv4 && f != FamilyIPv6:
			p.add("checks.families[%d] %q is not an address family: want ipv4 or ipv6", i, f)
		case seen[f]:
			p.add("checks.families[%d] %q is listed twice", i, f)
		}
		seen[f] = true
	}
}

// familyPolicyProblems are those of state.family_policy.
func (s StateConfig) familyPolicyProblems(p *problemList) {
	if pol := s.FamilyPolicy; pol != PolicyDegraded && pol != PolicyDown {
		p.add("state.family_policy %q: want degraded (a mirror broken over one address family stays offered) or down", pol)
	}
}
