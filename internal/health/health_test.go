package health_test

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/health"
	"github.com/mlcd-dev/mlcd/internal/manifest"
)

func load(t *testing.T, name string) *unstructured.Unstructured {
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifest.Parse(name, data)
	if err != nil || len(objs) != 1 {
		t.Fatalf("%s: %v", name, err)
	}
	return objs[0]
}

func TestOf(t *testing.T) {
	cases := map[string]string{
		"deployment-available.yaml":         v1alpha1.HealthHealthy,
		"deployment-rolling.yaml":           v1alpha1.HealthProgressing,
		"deployment-deadline-exceeded.yaml": v1alpha1.HealthDegraded,
		"deployment-paused.yaml":            v1alpha1.HealthSuspended,
		"service-lb-pending.yaml":           v1alpha1.HealthProgressing,
		"hpa-unable.yaml":                   v1alpha1.HealthDegraded,
		"pod-crashloop.yaml":                v1alpha1.HealthDegraded,
		"job-failed.yaml":                   v1alpha1.HealthDegraded,
		"job-running.yaml":                  v1alpha1.HealthProgressing,
		"job-complete.yaml":                 v1alpha1.HealthHealthy,
		"statefulset-ready.yaml":            v1alpha1.HealthHealthy,
		"statefulset-rolling.yaml":          v1alpha1.HealthProgressing,
		"daemonset-ready.yaml":              v1alpha1.HealthHealthy,
		"daemonset-rolling.yaml":            v1alpha1.HealthProgressing,
		"pvc-bound.yaml":                    v1alpha1.HealthHealthy,
		"pvc-pending.yaml":                  v1alpha1.HealthProgressing,
		"ingress-address.yaml":              v1alpha1.HealthHealthy,
		"ingress-pending.yaml":              v1alpha1.HealthProgressing,
		"isvc-ready.yaml":                   v1alpha1.HealthHealthy,
		"isvc-loading.yaml":                 v1alpha1.HealthProgressing,
		"isvc-failed-load.yaml":             v1alpha1.HealthDegraded,
		"isvc-ingress-false.yaml":           v1alpha1.HealthDegraded,
		// Crossplane, as Argo CD's health checks read it.
		"crossplane-ready.yaml":             v1alpha1.HealthHealthy,
		"crossplane-creating.yaml":          v1alpha1.HealthProgressing,
		"crossplane-sync-failed.yaml":       v1alpha1.HealthDegraded,
		"crossplane-no-status.yaml":         v1alpha1.HealthProgressing,
		"crossplane-claim-ready.yaml":       v1alpha1.HealthHealthy,
		"crossplane-claim-unavailable.yaml": v1alpha1.HealthProgressing,
		"crossplane-providerconfig.yaml":    v1alpha1.HealthHealthy,
	}
	for file, want := range cases {
		if got := health.Of(load(t, file)); got.Status != want {
			t.Errorf("%s: %s (%s), want %s", file, got.Status, got.Message, want)
		}
	}
	if got := health.Of(load(t, "crossplane-sync-failed.yaml")); got.Message != "cannot create RedisInstance: googleapi: Error 403: permission denied" {
		t.Errorf("Synced=False message: %q", got.Message)
	}
	if got := health.Of(nil); got.Status != v1alpha1.HealthMissing {
		t.Errorf("nil: %s", got.Status)
	}
}

func TestWorst(t *testing.T) {
	got := health.Worst([]v1alpha1.HealthStatus{{Status: "Healthy"}, {Status: "Degraded", Message: "x"}, {Status: "Progressing"}})
	if got.Status != "Degraded" || got.Message != "x" {
		t.Errorf("worst = %+v", got)
	}
	if health.Worst(nil).Status != "Healthy" {
		t.Error("empty app must be Healthy")
	}
}
