package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestRolloutInconclusivePromote: a measurement that meets neither
// condition pauses the rollout (InconclusiveAnalysis), `mlcd rollout
// status` shows it with the measurement, a readonly token may not
// promote, and `mlcd rollout promote` continues it to the end.
func TestRolloutInconclusivePromote(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	e := startWithRegistry(t, reg.Client)
	metric := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"errorRate": 0.07}`) // between 0.05 and 0.1: neither
	}))
	defer metric.Close()
	for _, v := range []string{"v2.3.1", "v2.3.2"} {
		registrytest.Register(t, reg.Client, "fraud-detection", v, map[string]float64{"auc": 0.95})
	}
	values := func(v string) string {
		return fmt.Sprintf("model:\n  version: %s\n  replicas: 2\nautoscaling:\n  enabled: false\n", v)
	}
	repo := gittest.New(t)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/models/fraud-detection", "models/fraud-detection", nil)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/base", "base", nil) // the shared model-server chart
	repo.Write(map[string]string{
		"models/fraud-detection/values-production.yaml": values("v2.3.1"),
		"models/fraud-detection/mlcd.yaml": `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: production, valuesFile: values-production.yaml, application: fd}
  rollout:
    production:
      canary:
        steps:
        - setWeight: 50
        - analysis: {templates: [{templateName: error-rate}]}
        - setWeight: 100
`,
	}).Commit("v2.3.1")
	dest := e.ns + "-fd"
	app := &v1alpha1.Application{}
	yaml.Unmarshal([]byte(fmt.Sprintf(`metadata: {name: fd, namespace: %s}
spec:
  project: default
  source: {repoURL: %s, targetRevision: main, path: models/fraud-detection, helm: {valueFiles: [values-production.yaml]}}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`, e.ns, repo.URL(), dest)), app)
	ctx := context.Background()
	if err := e.c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	waitApp := func(what string, ok func(*v1alpha1.Application) bool) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			a := &v1alpha1.Application{}
			if e.c.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: "fd"}, a) == nil && ok(a) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: not reached", what)
	}
	waitApp("Synced and Healthy at v2.3.1", func(a *v1alpha1.Application) bool {
		return a.Status.Sync.Status == v1alpha1.SyncStatusSynced && a.Status.Health.Status == v1alpha1.HealthHealthy
	})
	at := &v1alpha1.AnalysisTemplate{}
	yaml.Unmarshal([]byte(fmt.Sprintf(`metadata: {name: error-rate, namespace: %s}
spec:
  metrics:
  - name: error-rate
    successCondition: result < 0.05
    failureCondition: result > 0.1
    provider: {web: {url: %q, jsonPath: "{$.errorRate}"}}
`, dest, metric.URL)), at)
	if err := e.c.Create(ctx, at); err != nil {
		t.Fatal(err)
	}
	repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": values("v2.3.2")}).Commit("v2.3.2")
	if out, err := e.mlcd(adminToken, "app", "refresh", "fd"); err != nil {
		t.Fatal(out, err)
	}
	var status string
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(status, "InconclusiveAnalysis") {
		time.Sleep(200 * time.Millisecond)
		status, _ = e.mlcd(readonlyToken, "rollout", "status", "fd")
	}
	for _, want := range []string{"Paused (InconclusiveAnalysis)", "v2.3.1 → v2.3.2", "canary 1/1 ready", "error-rate", "Inconclusive", "0.07"} {
		if !strings.Contains(status, want) {
			t.Fatalf("rollout status lacks %q:\n%s", want, status)
		}
	}
	if out, err := e.mlcd(readonlyToken, "rollout", "promote", "fd"); err == nil || !strings.Contains(out+err.Error(), "admin") {
		t.Fatalf("a readonly token promoted: %s %v", out, err)
	}
	if out, err := e.mlcd(adminToken, "rollout", "promote", "fd"); err != nil {
		t.Fatal(out, err)
	}
	waitApp("Synced and Healthy at v2.3.2", func(a *v1alpha1.Application) bool {
		return a.Status.Sync.Status == v1alpha1.SyncStatusSynced && a.Status.Health.Status == v1alpha1.HealthHealthy && a.Annotations[v1alpha1.AppAnnotationVersion] == "v2.3.2"
	})
	status, _ = e.mlcd(readonlyToken, "rollout", "status", "fd")
	if !strings.Contains(status, "Healthy") || !strings.Contains(status, "✔ 1  analysis error-rate") {
		t.Errorf("status after promote:\n%s", status)
	}
	if code, body := e.call(http.MethodPost, "/api/v1/applications/fd/rollout/abort", adminToken, nil); code != http.StatusConflict {
		t.Errorf("abort of a finished rollout: %d %s", code, body)
	}
	_, scrape := e.call(http.MethodGet, "/metrics", "", nil)
	for _, want := range []string{
		`mlcd_rollout_phase{environment="production",model="fraud-detection",name="fd",namespace="` + e.ns + `",phase="Healthy"} 1`,
		`mlcd_rollout_weight{environment="production",model="fraud-detection",name="fd",namespace="` + e.ns + `"} 100`,
		`mlcd_analysis_measurement_total{metric="error-rate",phase="Inconclusive",template="error-rate"} 1`,
		`argocd_git_request_total{repo="` + repo.URL() + `",request_type="fetch"}`,
		`argocd_git_request_duration_seconds_bucket{repo="` + repo.URL() + `",request_type="ls-remote"`,
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}
