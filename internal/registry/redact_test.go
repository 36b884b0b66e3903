package registry_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
)

// TestCredentialsInTrackingURI: user:password in MLFLOW_TRACKING_URI is
// used as basic auth and never shown in the client's URL or its errors.
func TestCredentialsInTrackingURI(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{BasicUsers: map[string]string{"ml": "hunter2-secret"}})
	u, _ := url.Parse(reg.URL)
	u.User = url.UserPassword("ml", "hunter2-secret")
	t.Setenv("MLFLOW_TRACKING_URI", u.String())
	c, err := registry.NewClient(registry.OptionsFromEnv(""))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.URL(), "hunter2") {
		t.Fatalf("client URL shows the password: %s", c.URL())
	}
	ctx := context.Background()
	if _, err := c.CreateRegisteredModel(ctx, "m", "", nil); err != nil {
		t.Fatalf("basic auth from the URL: %v", err)
	}
	_, err = c.GetRegisteredModel(ctx, "missing")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error: %v", err)
	}
	// An unreachable server: the transport's error names the URL.
	bad, _ := registry.NewClient(registry.ClientOptions{URL: "http://ml:hunter2-secret@127.0.0.1:1", MaxRetries: 1})
	if _, err := bad.GetRegisteredModel(ctx, "m"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("unreachable: %v", err)
	}
	if err := (registry.ClientOptions{URL: "ftp://ml:hunter2-secret@host"}).Validate(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("validate: %v", err)
	}
}
