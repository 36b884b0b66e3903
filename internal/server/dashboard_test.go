package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/deploy/grafana"
	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/metrics"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
	"github.com/prometheus/client_golang/prometheus"
)

// TestGrafanaDashboardMetricsExist: every metric a query of
// deploy/grafana/mlcd.json names is in a real scrape of a governed app.
func TestGrafanaDashboardMetricsExist(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95})
	promReg := prometheus.NewRegistry()
	rec := metrics.New(promReg)
	rc, err := registry.NewClient(registry.ClientOptions{URL: reg.URL, OnRequest: rec.RegistryRequest})
	if err != nil {
		t.Fatal(err)
	}
	e := startWithMetrics(t, promReg, rec, rc)
	repo := gittest.New(t)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/models/fraud-detection", "models/fraud-detection", nil)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/base", "base", nil) // the shared model-server chart
	repo.Remove("models/fraud-detection/mlcd.yaml")
	repo.Commit("chart")
	mp := &v1alpha1.ModelPolicy{}
	yaml.Unmarshal([]byte("metadata: {name: fraud-detection}\nspec: {registeredModel: fraud-detection, environments: [{name: production, valuesFile: values-production.yaml, application: fd}], gates: [{metric: auc, op: '>=', value: 0.9}]}\n"), mp)
	mp.Namespace = e.ns
	if err := e.c.Create(context.Background(), mp); err != nil {
		t.Fatal(err)
	}
	app := &v1alpha1.Application{}
	yaml.Unmarshal([]byte(fmt.Sprintf("metadata: {name: fd}\nspec: {project: default, source: {repoURL: %s, targetRevision: main, path: models/fraud-detection, helm: {valueFiles: [values-production.yaml]}}, destination: {server: https://kubernetes.default.svc, namespace: %s}, syncPolicy: {automated: {prune: true}}}\n", repo.URL(), e.ns)), app)
	app.Namespace = e.ns
	if err := e.c.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	// The rollout and ApplicationSet series exist for any ModelRollout and
	// ApplicationSet: one of each (the rollout as the controller would
	// write it, the set with no elements) puts them in the scrape.
	for _, doc := range []string{
		"apiVersion: mlcd.io/v1alpha1\nkind: ModelRollout\nmetadata: {name: fd}\nspec: {application: fd, model: fraud-detection, environment: production, revision: abc, stableVersion: v2.3.0, canaryVersion: v2.3.1, workloads: [], strategy: {steps: [{setWeight: 20}]}}\n",
		"apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: models}\nspec: {generators: [{list: {elements: []}}], template: {metadata: {name: '{{name}}'}, spec: {project: default, source: {repoURL: x}, destination: {namespace: x}}}}\n",
	} {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		u.SetNamespace(e.ns)
		if err := e.c.Create(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := e.mlcd(adminToken, "app", "wait", "fd", "--sync", "--timeout", "60s"); err != nil {
		t.Fatalf("wait: %v\n%s", err, out)
	}
	_, scrape := e.call("GET", "/metrics", "", nil)

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(grafana.Dashboard, &dash); err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`\b(argocd|mlcd)_[a-z_]+\b`)
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		exprs = append(exprs, v.Query)
	}
	checked := 0
	for _, expr := range exprs {
		for _, m := range name.FindAllString(expr, -1) {
			checked++
			if !strings.Contains(scrape, "\n"+m+"{") && !strings.Contains(scrape, "\n"+m+" ") {
				t.Errorf("the dashboard queries %s (in %q), which the scrape lacks", m, expr)
			}
		}
	}
	if checked < 8 {
		t.Fatalf("only %d metric names found in the dashboard", checked)
	}
}
