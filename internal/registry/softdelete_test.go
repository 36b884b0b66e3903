package registry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
)

// TestSoftDelete: as in MLflow, a deleted version's number is never
// reused, and resolving it says it was deleted.
func TestSoftDelete(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registry.ServerOptions{})
	c := reg.Client
	if _, err := c.CreateRegisteredModel(ctx, "m", "", nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.CreateModelVersion(ctx, "m", registry.CreateVersionOptions{Source: "s3://m"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeleteModelVersion(ctx, "m", "3"); err != nil {
		t.Fatal(err)
	}
	v, err := c.CreateModelVersion(ctx, "m", registry.CreateVersionOptions{Source: "s3://m"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != "4" {
		t.Fatalf("version after deleting 3 = %s, want 4", v.Version)
	}
	_, err = c.GetModelVersion(ctx, "m", "3")
	if !errors.Is(err, registry.ErrNotFound) || !errors.Is(err, registry.ErrDeleted) {
		t.Fatalf("get deleted version: %v, want not found and deleted", err)
	}
	if _, err := registry.Resolve(ctx, c, "m", "3"); !errors.Is(err, registry.ErrDeleted) {
		t.Fatalf("resolve deleted version: %v", err)
	}
	if _, err := c.GetModelVersion(ctx, "m", "9"); errors.Is(err, registry.ErrDeleted) || !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("a version that never existed: %v", err)
	}
}
