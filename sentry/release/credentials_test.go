package release

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/config"
)

// TestManifestErrorsHideTheMastersPassword: a master.url with user info is
// used for requests, but what is said of its manifest (missing, or
// malformed) never shows the password.
func TestManifestErrorsHideTheMastersPassword(t *testing.T) {
	t.Parallel()
	const secret = "masterpass"
	for _, tt := range []struct {
		name string
		body string
		code int
	}{
		{"missing", "", http.StatusNotFound},
		{"malformed", "this is not a manifest line\n", http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var sawAuth bool
			master := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, pass, ok := r.BasicAuth(); ok && pass == secret {
					sawAuth = true
				}
				w.WriteHeader(tt.code)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer master.Close()
			cfg := config.Default()
			cfg.Master.URL = strings.Replace(master.URL, "http://", "http://release:"+secret+"@", 1)
			cfg.Releases.Dir = "/releases/{release}/"
			client, err := checks.NewClient(checks.ClientOptions{UserAgent: "sentry-test"})
			if err != nil {
				t.Fatal(err)
			}
			r := &Resolver{Config: &cfg, Client: client}
			err = r.ReadManifest(context.Background(), "1.5")
			if !errors.Is(err, ErrManifest) {
				t.Fatalf("ReadManifest: %v; want ErrManifest", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the master's password: %v", err)
			}
			if !sawAuth {
				t.Errorf("the request did not carry the master's credentials")
			}
		})
	}
}
