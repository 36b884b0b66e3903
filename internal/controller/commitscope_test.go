package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestCommitTouchesOnlyWhatItChanges: ten governed apps in one
// repository; a commit bumping one model's version. Once every app has
// compared at that commit, no object of the other nine changed its
// resourceVersion, and their lineage (the deployed revision) still names
// the commit that first deployed them.
func TestCommitTouchesOnlyWhatItChanges(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startWith(t, time.Minute, reg.Client)
	repo := gittest.New(t)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/base", "base", nil)
	const n = 10
	for i := range n {
		dir := fmt.Sprintf("models/m%d", i)
		repo.CopyFS(examples.MLDeployments, "ml-deployments/models/fraud-detection", dir, map[string]string{"fraud-detection": fmt.Sprintf("m%d", i)})
		repo.Write(map[string]string{
			dir + "/values-production.yaml": "model:\n  version: v1\n  replicas: 1\nautoscaling:\n  enabled: false\n",
			dir + "/mlcd.yaml":              fmt.Sprintf("apiVersion: mlcd.io/v1alpha1\nkind: ModelPolicy\nmetadata: {name: m%d}\nspec:\n  registeredModel: m%d\n  environments:\n  - {name: production, valuesFile: values-production.yaml, application: m%d}\n", i, i, i),
		})
		for _, v := range []string{"v1", "v2"} {
			registrytest.Register(t, reg.Client, fmt.Sprintf("m%d", i), v, map[string]float64{"auc": 0.95})
		}
	}
	first := repo.Commit("ten models")
	dest := h.ns + "-models"
	h.namespaceGone(t, dest)
	for i := range n {
		doc := strings.Replace(app, "path: models/fraud-detection", fmt.Sprintf("path: models/m%d", i), 1)
		h.create(doc, map[string]string{"{{NAME}}": fmt.Sprintf("m%d", i), "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	}
	for i := range n {
		h.waitSynced(fmt.Sprintf("m%d", i), first)
	}
	versions := func() map[string]string {
		out := map[string]string{}
		for _, gvk := range []schema.GroupVersionKind{{Group: "apps", Version: "v1", Kind: "DeploymentList"}, {Version: "v1", Kind: "ServiceList"}} {
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(gvk)
			if err := h.c.List(context.Background(), list, client.InNamespace(dest)); err != nil {
				t.Fatal(err)
			}
			for _, o := range list.Items {
				out[gvk.Kind+"/"+o.GetName()] = o.GetResourceVersion()
			}
		}
		return out
	}
	before := versions()
	if len(before) < 2*n {
		t.Fatalf("objects before the commit: %v", before)
	}
	bump := repo.Write(map[string]string{"models/m3/values-production.yaml": "model:\n  version: v2\n  replicas: 1\nautoscaling:\n  enabled: false\n"}).Commit("bump m3 to v2")
	for i := range n {
		h.refresh(fmt.Sprintf("m%d", i))
	}
	for i := range n {
		h.waitSynced(fmt.Sprintf("m%d", i), bump)
	}
	time.Sleep(2 * time.Second) // anything late would show now
	after := versions()
	changed := 0
	for k, rv := range after {
		if before[k] != rv {
			if !strings.HasSuffix(k, "/m3") {
				t.Errorf("%s of an app the commit did not touch changed (resourceVersion %s → %s)", k, before[k], rv)
			}
			changed++
		}
	}
	if changed == 0 {
		t.Error("the bumped app's objects did not change")
	}
	for i := range n {
		a := h.app(fmt.Sprintf("m%d", i))
		want := first
		if i == 3 {
			want = bump
		}
		if got := a.DeployedRevision(); got != want {
			t.Errorf("m%d's lineage names %s, want %s (compared at %s)", i, shortSHA(got), shortSHA(want), shortSHA(a.Status.Sync.Revision))
		}
	}
}
