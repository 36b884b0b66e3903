package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/source"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestRepositorySecretOnlyFromControlPlane: a private repository syncs
// with a repository Secret in the control-plane namespace (as `mlcd up
// --repo … --repo-password-file` writes it); the same Secret in a tenant's
// namespace is not read.
func TestRepositorySecretOnlyFromControlPlane(t *testing.T) {
	env := clustertest.Get(t)
	tenant := env.Namespace(t)
	h := start(t, time.Minute)
	repo := gittest.New(t)
	repo.Write(map[string]string{"manifests/a.yaml": cm("private-cm")})
	repo.Commit("private")
	url := repo.ServeHTTP("reader", "s3cret-pass")
	creds := source.Credentials{Username: "reader", Password: "s3cret-pass"}
	if err := h.c.Create(context.Background(), controller.RepositorySecret(tenant, url, creds)); err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(dirApp, "repoURL: {{REPO}}", "repoURL: "+url, 1)
	h.create(doc, map[string]string{"{{NAME}}": "private", "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitCondition("private", v1alpha1.ConditionComparisonError, "")
	a := h.app("private")
	for _, c := range a.Status.Conditions {
		if strings.Contains(c.Message, "s3cret-pass") {
			t.Fatalf("condition shows the password: %s", c.Message)
		}
	}
	if h.configMapExists(h.ns, "private-cm") {
		t.Fatal("synced with a tenant's Secret")
	}
	if err := h.c.Create(context.Background(), controller.RepositorySecret(h.ns, url, creds)); err != nil {
		t.Fatal(err)
	}
	h.refresh("private")
	h.waitSynced("private", "")
	if !h.configMapExists(h.ns, "private-cm") {
		t.Fatal("private-cm not applied")
	}
	for _, e := range h.events("private") {
		if strings.Contains(e, "s3cret-pass") {
			t.Fatalf("event shows the password: %s", e)
		}
	}
}

// TestPruneLast: an object marked PruneLast=true is pruned only after
// everything else is applied and the app is Healthy; others go at once.
func TestPruneLast(t *testing.T) {
	h := start(t, time.Minute)
	repo := gittest.New(t)
	last := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pl-last, annotations: {argocd.argoproj.io/sync-options: PruneLast=true}}\ndata: {k: v}\n"
	repo.Write(map[string]string{"manifests/a.yaml": cm("pl-first"), "manifests/b.yaml": last}).Commit("two")
	h.create(dirApp, map[string]string{"{{NAME}}": "prunelast", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitSynced("prunelast", "")
	deploy := `apiVersion: apps/v1
kind: Deployment
metadata: {name: pl-new}
spec:
  replicas: 2
  selector: {matchLabels: {app: pl-new}}
  template:
    metadata: {labels: {app: pl-new}}
    spec: {containers: [{name: c, image: example/server:v1}]}
`
	repo.Remove("manifests/a.yaml", "manifests/b.yaml").Write(map[string]string{"manifests/d.yaml": deploy}).Commit("replace")
	h.refresh("prunelast")
	var firstGone, available, lastGone time.Time
	h.eventually(60*time.Second, "all pruned and the Deployment available", func() (bool, string) {
		now := time.Now()
		if firstGone.IsZero() && !h.configMapExists(h.ns, "pl-first") {
			firstGone = now
		}
		if d := h.deployment(h.ns, "pl-new"); available.IsZero() && d != nil && d.Status.AvailableReplicas == 2 {
			available = now
		}
		if lastGone.IsZero() && !h.configMapExists(h.ns, "pl-last") {
			lastGone = now
		}
		return !firstGone.IsZero() && !available.IsZero() && !lastGone.IsZero(), ""
	})
	if lastGone.Before(available) {
		t.Fatalf("PruneLast object pruned at %s, before the app was healthy at %s", lastGone.Format(time.StampMilli), available.Format(time.StampMilli))
	}
	if !firstGone.Before(available) {
		t.Errorf("the ordinary stale object waited for health: gone %s, available %s", firstGone.Format(time.StampMilli), available.Format(time.StampMilli))
	}
}
