package controller_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/analysis/promtest"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
)

// TestCanaryPrometheus: a canary whose error rate (scraped by a real
// Prometheus from an exporter the test sets) is low rolls out; one whose
// error rate is high is aborted on the Prometheus provider, the stable
// version back at full scale.
func TestCanaryPrometheus(t *testing.T) {
	reg := promclient.NewRegistry()
	rate := promclient.NewGauge(promclient.GaugeOpts{Name: "model_error_rate", Help: "errors per request", ConstLabels: promclient.Labels{"service": "fraud-detection"}})
	reg.MustRegister(rate)
	exporter := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer exporter.Close()
	prom := promtest.Start(t, exporter.Listener.Addr().String())

	models := registrytest.Start(t, registry.ServerOptions{})
	h := startOpts(t, controller.Options{PollInterval: time.Minute, Registry: models.Client})
	values := func(v string) string {
		return fmt.Sprintf("model:\n  version: %s\n  replicas: 2\nautoscaling:\n  enabled: false\n", v)
	}
	repo := modelRepo(t)
	repo.Write(map[string]string{
		"models/fraud-detection/values-production.yaml": values("v2.3.1"),
		"models/fraud-detection/mlcd.yaml": `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: production, valuesFile: values-production.yaml, application: fd-prom}
  rollout:
    production:
      onFailure: abort
      canary:
        steps:
        - setWeight: 50
        - analysis: {templates: [{templateName: error-rate}], args: [{name: service, value: fraud-detection}]}
        - setWeight: 100
`,
	}).Commit("v2.3.1")
	for _, v := range []string{"v2.3.1", "v2.3.2", "v2.3.3"} {
		registrytest.Register(t, models.Client, "fraud-detection", v, map[string]float64{"auc": 0.95})
	}
	dest := h.ns + "-prom"
	h.namespaceGone(t, dest)
	h.create(app, map[string]string{"{{NAME}}": "fd-prom", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitSynced("fd-prom", "")
	h.createYAML(fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: error-rate, namespace: %s}
spec:
  args: [{name: service}]
  metrics:
  - name: error-rate
    interval: 300ms
    count: 3
    successCondition: result[0] < 0.05
    failureCondition: result[0] >= 0.1
    provider:
      prometheus:
        address: %s
        query: 'max(model_error_rate{service="{{args.service}}"})'
`, dest, prom), &v1alpha1.AnalysisTemplate{})

	// Prometheus has scraped a low error rate before the first canary.
	rate.Set(0.01)
	time.Sleep(6 * time.Second) // Prometheus 2.42's first sample lands ≈ 5 s after start
	pass := repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": values("v2.3.2")}).Commit("v2.3.2")
	h.refresh("fd-prom")
	h.waitSynced("fd-prom", pass)
	h.eventually(60*time.Second, "v2.3.2 at 2 replicas", func() (bool, string) {
		s := h.deployment(dest, "fraud-detection")
		return strings.HasSuffix(image(s), ":v2.3.2") && s.Status.UpdatedReplicas == 2 && h.deployment(dest, "fraud-detection-canary") == nil, image(s)
	})
	if mr := h.rollout("fd-prom"); mr.Status.Phase != "Healthy" || mr.Status.Analysis[0].Metrics[0].Successful != 3 {
		t.Fatalf("passing canary: %s %+v", mr.Status.Phase, mr.Status.Analysis)
	}

	rate.Set(0.2)
	time.Sleep(time.Second)
	repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": values("v2.3.3")}).Commit("v2.3.3")
	h.refresh("fd-prom")
	h.eventually(60*time.Second, "v2.3.3 aborted on the Prometheus metric", func() (bool, string) {
		mr := h.rollout("fd-prom")
		return mr.Spec.CanaryVersion == "v2.3.3" && mr.Status.Phase == "Degraded" && strings.Contains(mr.Status.Message, "value [0.2] meets failure condition"), mr.Status.Message
	})
	h.eventually(60*time.Second, "v2.3.2 back at 2 replicas, no canary", func() (bool, string) {
		s := h.deployment(dest, "fraud-detection")
		return strings.HasSuffix(image(s), ":v2.3.2") && *s.Spec.Replicas == 2 && s.Status.AvailableReplicas == 2 && h.deployment(dest, "fraud-detection-canary") == nil, image(s)
	})
}
