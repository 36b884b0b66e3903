// Package registrytest starts the embedded registry on a loopback port for
// tests, with a fresh SQLite file per test.
package registrytest

import (
	"context"
	"errors"
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

// Register creates (if needed) model, a finished run in experiment "eval"
// holding metrics, and a version tagged version=<version> linked to it;
// then points each alias at it.
func Register(t testing.TB, c *registry.Client, model, version string, metrics map[string]float64, aliases ...string) *registry.ModelVersion {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CreateRegisteredModel(ctx, model, "", nil); err != nil && !errors.Is(err, registry.ErrAlreadyExists) {
		t.Fatal(err)
	}
	expID, err := c.CreateExperiment(ctx, "eval")
	if errors.Is(err, registry.ErrAlreadyExists) {
		exp, err2 := c.GetExperimentByName(ctx, "eval")
		if err2 != nil {
			t.Fatal(err2)
		}
		expID, err = exp.ExperimentID, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.CreateRun(ctx, expID, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range metrics {
		if err := c.LogMetric(ctx, run.Info.RunID, k, v, 0); err != nil {
			t.Fatal(err)
		}
	}
	v, err := c.CreateModelVersion(ctx, model, registry.CreateVersionOptions{
		Source: "s3://models/" + model + "/" + version, RunID: run.Info.RunID,
		Tags: []registry.Tag{{Key: registry.VersionTag, Value: version}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range aliases {
		if err := c.SetAlias(ctx, model, a, v.Version); err != nil {
			t.Fatal(err)
		}
	}
	return v
}
