package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestCrossplaneResources: Crossplane managed resources sync as ordinary
// manifests and take Crossplane's health from the statuses a provider
// writes; on prune, one with deletionPolicy Orphan is deleted saying the
// external resource is kept, one with deletionPolicy Delete waits with a
// condition until the app carries the deletion approval.
func TestCrossplaneResources(t *testing.T) {
	h := start(t, time.Minute)
	installCRDs(h, "testdata/crossplane-crds.yaml")
	ctx := context.Background()
	db, cache := h.ns+"-mlflow-db", h.ns+"-feature-cache"
	repo := gittest.New(t)
	sha := repo.Write(map[string]string{
		"infra/database.yaml": fmt.Sprintf("apiVersion: sql.gcp.upbound.io/v1beta1\nkind: DatabaseInstance\nmetadata: {name: %s}\nspec:\n  forProvider: {databaseVersion: POSTGRES_15, region: us-central1}\n  providerConfigRef: {name: default}\n", db),
		"infra/redis.yaml":    fmt.Sprintf("apiVersion: redis.gcp.upbound.io/v1beta1\nkind: Instance\nmetadata: {name: %s}\nspec:\n  deletionPolicy: Orphan\n  forProvider: {memorySizeGb: 4, region: us-central1}\n", cache),
		"infra/cm.yaml":       cm("infra-notes"),
	}).Commit("infrastructure")
	h.create(strings.Replace(dirApp, "path: manifests", "path: infra", 1), map[string]string{"{{NAME}}": "infra", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})

	h.eventually(30*time.Second, "infra Synced and Progressing without a provider", func() (bool, string) {
		a := h.app("infra")
		return a.Status.Sync.Status == v1alpha1.SyncStatusSynced && a.Status.Sync.Revision == sha && a.Status.Health.Status == v1alpha1.HealthProgressing,
			a.Status.Sync.Status + "/" + a.Status.Health.Status + " " + a.Status.Health.Message
	})
	setStatus := func(apiVersion, kind, name string, conditions ...map[string]any) {
		t.Helper()
		o := &unstructured.Unstructured{}
		o.SetAPIVersion(apiVersion)
		o.SetKind(kind)
		if err := h.c.Get(ctx, types.NamespacedName{Name: name}, o); err != nil {
			t.Fatal(err)
		}
		conds := make([]any, len(conditions))
		for i, c := range conditions {
			conds[i] = c
		}
		unstructured.SetNestedSlice(o.Object, conds, "status", "conditions")
		if err := h.c.Status().Update(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	ready := map[string]any{"type": "Ready", "status": "True", "reason": "Available"}
	synced := map[string]any{"type": "Synced", "status": "True", "reason": "ReconcileSuccess"}
	setStatus("sql.gcp.upbound.io/v1beta1", "DatabaseInstance", db, ready, synced)
	setStatus("redis.gcp.upbound.io/v1beta1", "Instance", cache, ready, synced)
	h.waitSynced("infra", sha)

	// The provider cannot reconcile: Degraded with its message.
	setStatus("sql.gcp.upbound.io/v1beta1", "DatabaseInstance", db, ready, map[string]any{"type": "Synced", "status": "False", "reason": "ReconcileError", "message": "cannot update DatabaseInstance: googleapi: Error 403"})
	h.eventually(15*time.Second, "infra Degraded with the provider's message", func() (bool, string) {
		a := h.app("infra")
		return a.Status.Health.Status == v1alpha1.HealthDegraded && strings.Contains(a.Status.Health.Message, "Error 403"), a.Status.Health.Status + " " + a.Status.Health.Message
	})
	setStatus("sql.gcp.upbound.io/v1beta1", "DatabaseInstance", db, ready, synced)

	// Both leave Git: the Orphan one is pruned saying so; the Delete one
	// waits for approval.
	sha2 := repo.Remove("infra/database.yaml", "infra/redis.yaml").Commit("retire the database and cache")
	h.refresh("infra")
	h.waitCondition("infra", v1alpha1.ConditionDeletionApproval, "DatabaseInstance/"+db)
	gone := func(apiVersion, kind, name string) bool {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion(apiVersion)
		o.SetKind(kind)
		err := h.c.Get(ctx, types.NamespacedName{Name: name}, o)
		return apierrors.IsNotFound(err) || (err == nil && o.GetDeletionTimestamp() != nil)
	}
	h.eventually(15*time.Second, "the Orphan cache pruned", func() (bool, string) {
		a := h.app("infra")
		why := fmt.Sprintf("sync %s; conditions %+v", a.Status.Sync.Status, a.Status.Conditions)
		if st := a.Status.OperationState; st != nil {
			why += fmt.Sprintf("; operation %s: %s", st.Phase, st.Message)
		}
		return gone("redis.gcp.upbound.io/v1beta1", "Instance", cache), why
	})
	orphanNoted := false
	if st := h.app("infra").Status.OperationState; st != nil && st.SyncResult != nil {
		for _, r := range st.SyncResult.Resources {
			orphanNoted = orphanNoted || (r.Name == cache && strings.Contains(r.Message, "external resource is kept"))
		}
	}
	if !orphanNoted {
		t.Errorf("the Orphan prune does not say the external resource is kept: %+v", h.app("infra").Status.OperationState)
	}
	time.Sleep(2 * time.Second)
	if gone("sql.gcp.upbound.io/v1beta1", "DatabaseInstance", db) {
		t.Fatal("a managed resource with deletionPolicy Delete was pruned without approval")
	}
	if a := h.app("infra"); a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
		t.Errorf("infra is Synced while its database waits for deletion approval")
	}

	// Approval: the database is pruned, the approval consumed.
	h.patchApp("infra", func(a *v1alpha1.Application) {
		a.Annotations = map[string]string{v1alpha1.AnnotationDeletionApproved: time.Now().UTC().Format(time.RFC3339)}
	})
	h.eventually(30*time.Second, "the approved database pruned", func() (bool, string) { return gone("sql.gcp.upbound.io/v1beta1", "DatabaseInstance", db), "" })
	a := h.waitSynced("infra", sha2)
	if _, still := a.Annotations[v1alpha1.AnnotationDeletionApproved]; still {
		t.Error("the approval was not consumed by the prune that used it")
	}
	for _, c := range a.Status.Conditions {
		if c.Type == v1alpha1.ConditionDeletionApproval {
			t.Errorf("condition left after the prune: %s", c.Message)
		}
	}
}
