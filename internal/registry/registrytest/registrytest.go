// Package registrytest starts the embedded registry on a loopback port for
// tests, with a fresh SQLite file per test.
package registrytest

import (
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/mlcd-dev/mlcd/internal/registry"
)

// Registry is a running embedded registry and a client for it.
type Registry struct {
	URL    string
	Client *registry.Client
	Server *registry.Server
	DB     string
}

// Start runs a registry for the test's lifetime. Options' DB and
// ArtifactsDir default to files in t.TempDir().
func Start(t testing.TB, opts registry.ServerOptions) *Registry {
	t.Helper()
	dir := t.TempDir()
	if opts.DB == "" {
		opts.DB = filepath.Join(dir, "registry.db")
	}
	if opts.ArtifactsDir == "" {
		opts.ArtifactsDir = filepath.Join(dir, "artifacts")
	}
	srv, err := registry.NewServer(opts)
	if err != nil {
		t.Fatalf("start registry: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	c, err := registry.NewClient(registry.ClientOptions{URL: hs.URL, Token: opts.AuthToken})
	if err != nil {
		t.Fatal(err)
	}
	return &Registry{URL: hs.URL, Client: c, Server: srv, DB: opts.DB}
}
