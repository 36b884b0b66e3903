package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestRollbackAndViews: the UI's reads (model page, lineage, revision
// metadata, events) and a rollback through the API that reverts in Git,
// with the reason in the commit, and syncs the previous version.
func TestRollbackAndViews(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	e := startWithRegistry(t, reg.Client)
	for _, v := range []string{"v2.3.1", "v2.3.2"} {
		registrytest.Register(t, reg.Client, "fraud-detection", v, map[string]float64{"auc": 0.95})
	}
	repo := fraudRepo(t, "fd", "v2.3.1", "")
	gittest.Git(t, repo.Dir, "config", "receive.denyCurrentBranch", "updateInstead")
	dest := e.ns + "-fd"
	e.createFraudApp("fd", repo.URL(), dest)
	e.waitApp("fd", "Synced+Healthy at v2.3.1", synced("v2.3.1"))
	bump := repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": fraudValues("v2.3.2")}).Commit("promote fraud-detection v2.3.2")
	e.mlcd(adminToken, "app", "refresh", "fd")
	e.waitApp("fd", "Synced+Healthy at v2.3.2", synced("v2.3.2"))

	get := func(path string, out any) {
		t.Helper()
		code, body := e.call(http.MethodGet, path, readonlyToken, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		if err := json.Unmarshal([]byte(body), out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	var model struct {
		Environments []struct{ Environment, App, Version, Health string }
		Versions     []struct {
			Version, Tag string
			Metrics      map[string]float64
		}
	}
	get("/api/v1/models/fraud-detection", &model)
	if len(model.Environments) != 1 || model.Environments[0].Version != "v2.3.2" || len(model.Versions) != 2 || model.Versions[0].Metrics["auc"] != 0.95 {
		t.Errorf("model view = %+v", model)
	}
	var lineage struct {
		Revision, Version, RunID string
		Commit                   struct{ Message, Author string }
		Workloads                []struct {
			Name, Version string
			Pods          []struct{ Ready bool }
		}
	}
	get("/api/v1/applications/fd/lineage", &lineage)
	if lineage.Revision != bump || !strings.Contains(lineage.Commit.Message, "promote fraud-detection v2.3.2") || lineage.Version != "v2.3.2" || lineage.RunID == "" ||
		len(lineage.Workloads) != 1 || lineage.Workloads[0].Version != "v2.3.2" || len(lineage.Workloads[0].Pods) != 1 || !lineage.Workloads[0].Pods[0].Ready {
		t.Errorf("lineage = %+v", lineage)
	}
	var md struct{ Message, Author string }
	get("/api/v1/applications/fd/revisions/"+bump+"/metadata", &md)
	if !strings.Contains(md.Message, "v2.3.2") || md.Author == "" {
		t.Errorf("metadata = %+v", md)
	}
	var events struct {
		Items []struct{ Reason, Note string }
	}
	get("/api/v1/applications/fd/events", &events)
	if len(events.Items) == 0 || !strings.Contains(fmt.Sprint(events.Items), "SyncSucceeded") {
		t.Errorf("events = %+v", events)
	}

	// A readonly token may not roll back; an admin's rollback reverts in Git.
	if code, _ := e.call(http.MethodPost, "/api/v1/applications/fd/rollback", readonlyToken, strings.NewReader(`{}`)); code != http.StatusForbidden {
		t.Errorf("readonly rollback: %d", code)
	}
	out, err := e.mlcd(adminToken, "app", "rollback", "fd", "--reason", "latency regression")
	if err != nil || !strings.Contains(out, "reverted "+bump[:7]) {
		t.Fatalf("rollback: %s %v", out, err)
	}
	msg := gittest.Git(t, repo.Dir, "log", "-1", "--format=%B", "main")
	if !strings.Contains(msg, "This reverts commit "+bump) || !strings.Contains(msg, "rolled back by admin: latency regression") {
		t.Errorf("revert message:\n%s", msg)
	}
	e.waitApp("fd", "Synced+Healthy at v2.3.1 again", synced("v2.3.1"))
	a := e.getApp("fd")
	last := a.Status.History[len(a.Status.History)-1]
	if head := strings.TrimSpace(gittest.Git(t, repo.Dir, "rev-parse", "main")); last.Revision != head {
		t.Errorf("last history entry %s, want the revert %s", last.Revision, head)
	}
}

func fraudValues(v string) string {
	return fmt.Sprintf("model:\n  version: %s\n  replicas: 1\nautoscaling:\n  enabled: false\n", v)
}

// fraudRepo is the example chart governed by a policy whose production
// environment is the app named app (rollout: extra policy YAML).
func fraudRepo(t *testing.T, app, version, rollout string) *gittest.Repo {
	repo := gittest.New(t)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/models/fraud-detection", "models/fraud-detection", nil)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/base", "base", nil) // the shared model-server chart
	repo.Write(map[string]string{
		"models/fraud-detection/values-production.yaml": fraudValues(version),
		"models/fraud-detection/mlcd.yaml":              "apiVersion: mlcd.io/v1alpha1\nkind: ModelPolicy\nmetadata: {name: fraud-detection}\nspec:\n  registeredModel: fraud-detection\n  environments:\n  - {name: production, valuesFile: values-production.yaml, application: " + app + "}\n" + rollout,
	}).Commit("fraud-detection " + version)
	return repo
}

func (e *env) createFraudApp(name, repoURL, dest string) {
	e.t.Helper()
	e.createFraudAppIn(name, "default", repoURL, dest)
}

// createYAML creates one object (an AppProject) from YAML.
func createYAML(t *testing.T, e *env, doc string) {
	t.Helper()
	p := &v1alpha1.AppProject{}
	if err := yaml.Unmarshal([]byte(doc), p); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func (e *env) createFraudAppIn(name, project, repoURL, dest string) {
	e.t.Helper()
	a := &v1alpha1.Application{}
	yaml.Unmarshal([]byte(fmt.Sprintf(`metadata: {name: %s, namespace: %s}
spec:
  project: %s
  source: {repoURL: %s, targetRevision: main, path: models/fraud-detection, helm: {valueFiles: [values-production.yaml]}}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`, name, e.ns, project, repoURL, dest)), a)
	if err := e.c.Create(context.Background(), a); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_ = e.c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: dest}})
	})
}

func (e *env) getApp(name string) *v1alpha1.Application {
	e.t.Helper()
	a := &v1alpha1.Application{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: name}, a); err != nil {
		e.t.Fatal(err)
	}
	return a
}

func synced(version string) func(*v1alpha1.Application) bool {
	return func(a *v1alpha1.Application) bool {
		return a.Status.Sync.Status == v1alpha1.SyncStatusSynced && a.Status.Health.Status == v1alpha1.HealthHealthy && a.Annotations[v1alpha1.AppAnnotationVersion] == version
	}
}

func (e *env) waitApp(name, what string, ok func(*v1alpha1.Application) bool) {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last *v1alpha1.Application
	for time.Now().Before(deadline) {
		last = &v1alpha1.Application{}
		if e.c.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: name}, last) == nil && ok(last) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("%s: not reached; last status %s/%s %v", what, last.Status.Sync.Status, last.Status.Health.Status, last.Status.Conditions)
}
