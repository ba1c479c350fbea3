package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigAdminKeys(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // every substring must appear in the error
		not  []string // and none of these
	}{
		{"families", "checks:\n  contact: x@example.org\n  families: [ipv4, ipv5, ipv4]\n", nil,
			[]string{`checks.families[1] "ipv5" is not an address family`, `checks.families[2] "ipv4" is listed twice`}, nil},
		{"no family", "checks:\n  contact: x@example.org\n  families: []\n", nil, []string{"checks.families needs at least one"}, nil},
		{"policy", "state:\n  family_policy: drop\n", nil, []string{`state.family_policy "drop"`}, nil},
		{"ca_file missing", "checks:\n  contact: x@example.org\n  ca_file: /nonexistent/ca.pem\n", nil,
			[]string{`checks.ca_file "/nonexistent/ca.pem" does not exist`}, nil},
		{"ca_file not PEM", "checks:\n  contact: x@example.org\n  ca_file: " + notPEM + "\n", nil,
			[]string{"checks.ca_file", "holds no PEM certificate"}, []string{"hello"}},
		{"warning period", "checks:\n  contact: x@example.org\n  tls_expiry_warning: 10m\n", nil,
			[]string{"checks.tls_expiry_warning must be between 1h and 365d"}, nil},
		{"public url", "http:\n  public_url: ftp://x\n", nil, []string{"http.public_url"}, nil},
		{"smtp without a sender", "notify:\n  smtp:\n    host: smtp.example.org\n", nil, []string{"notify.smtp.from is required"}, nil},
		{"digest without a relay", "notify:\n  digest_to: [ops@example.org]\n", nil, []string{"notify.digest_to needs notify.smtp.host"}, nil},
		{"bad addresses", "notify:\n  smtp:\n    host: smtp.example.org\n    from: \"Sentry <s@example.org>\"\n  digest_to: [\"a@b.org, c@d.org\"]\n", nil,
			[]string{"notify.smtp.from", "not a plain e-mail address", "notify.digest_to[0]"}, nil},
		{"password without a user names the variable, not the value", "notify:\n  smtp:\n    host: smtp.example.org\n    from: s@example.org\n",
			map[string]string{EnvSMTPPassword: "s3cr3t-of-the-relay"}, []string{"SENTRY_SMTP_PASSWORD is set but notify.smtp.user is not"},
			[]string{"s3cr3t-of-the-relay"}},
		{"a password to another host needs STARTTLS", "notify:\n  smtp:\n    host: smtp.example.org\n    from: s@example.org\n    user: u\n    starttls: false\n",
			nil, []string{"notify.smtp.user needs notify.smtp.starttls"}, nil},
		{"port 465 is implicit TLS", "notify:\n  smtp:\n    host: smtp.example.org\n    port: 465\n    from: s@example.org\n",
			nil, []string{"notify.smtp.port 465", "notify.smtp.implicit_tls: true"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := tt.yaml
			if !strings.Contains(yaml, "checks:") {
				yaml = "checks:\n  contact: x@example.org\n" + yaml
			}
			base := strings.Replace(minimalConfig, "checks:\n  contact: ops@example.org\n", "", 1)
			_, err := Parse([]byte(base+yaml), "c.yaml", func(k string) string { return tt.env[k] })
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error holds %q:\n%v", n, err)
				}
			}
		})
	}
	// A good mail set-up, with the password from the environment.
	cfg, err := Parse([]byte(minimalConfig+"notify:\n  smtp:\n    host: smtp.example.org\n    user: sentry\n    from: sentry@example.org\n  digest_to: [ops@example.org]\n"),
		"c.yaml", func(k string) string { return map[string]string{EnvSMTPPassword: "p@ss/w#rd"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Notify.SMTP.Password != "p@ss/w#rd" || cfg.Notify.SMTP.Port != 587 || !cfg.Notify.SMTP.StartTLS ||
		cfg.State.FamilyPolicy != PolicyDegraded || len(cfg.Checks.Families) != 2 {
		t.Errorf("defaults and environment: %+v %+v", cfg.Notify.SMTP, cfg.State)
	}
	// Implicit TLS on port 465: a password may go to another host.
	smtps, err := Parse([]byte(minimalConfig+"notify:\n  smtp:\n    host: smtp.example.org\n    port: 465\n    implicit_tls: true\n    starttls: false\n    user: sentry\n    from: sentry@example.org\n"),
		"c.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatalf("implicit TLS on port 465 refused: %v", err)
	}
	if !smtps.Notify.SMTP.ImplicitTLS || cfg.Notify.SMTP.ImplicitTLS {
		t.Errorf("implicit TLS: %v here, %v by default; want true, and off by default", smtps.Notify.SMTP.ImplicitTLS, cfg.Notify.SMTP.ImplicitTLS)
	}
	secrets := strings.Join(cfg.Secrets(), "\n")
	if !strings.Contains(secrets, "p@ss/w#rd") || !strings.Contains(secrets, "p%40ss%2Fw%23rd") || !strings.Contains(secrets, "hunter2") {
		t.Errorf("secrets: %q", secrets)
	}
}
