package analysis

import (
	"context"
	"fmt"
	"github.com/mlcd-dev/mlcd/internal/egress"
	"net/http/httptest"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/analysis/promtest"
)

// TestPrometheusProvider runs Debian's prometheus on loopback, scraping a
// small exporter whose error rate the test sets: the canary at 1 % passes
// the Argo Rollouts-style condition, the one at 20 % fails it. .ci/run
// installs the package; without it (outside CI) the test is skipped.
func TestPrometheusProvider(t *testing.T) {
	reg := promclient.NewRegistry()
	rate := promclient.NewGaugeVec(promclient.GaugeOpts{Name: "model_error_rate", Help: "errors per request"}, []string{"service"})
	reg.MustRegister(rate)
	exporter := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer exporter.Close()

	prom := promtest.Start(t, exporter.Listener.Addr().String())

	m := v1alpha1.Metric{Name: "error-rate", SuccessCondition: "result[0] < 0.05", FailureCondition: "result[0] >= 0.1",
		Provider: v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusMetric{Address: prom, Query: `model_error_rate{service="fraud-detection"}`}}}
	measure := func(want float64) v1alpha1.Measurement {
		t.Helper()
		rate.WithLabelValues("fraud-detection").Set(want)
		deadline := time.Now().Add(30 * time.Second)
		for {
			meas := Measure(context.Background(), m, Env{Egress: egress.Policy{AllowLoopback: true}})
			if meas.Value == fmt.Sprintf("[%g]", want) {
				return meas
			}
			if time.Now().After(deadline) {
				t.Fatalf("prometheus never showed %g: last measurement %+v", want, meas)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if meas := measure(0.01); meas.Phase != Successful {
		t.Errorf("1%% error rate: %+v; want Successful", meas)
	}
	if meas := measure(0.2); meas.Phase != Failed {
		t.Errorf("20%% error rate: %+v; want Failed", meas)
	}
	if meas := measure(0.07); meas.Phase != Inconclusive {
		t.Errorf("7%% error rate: %+v; want Inconclusive", meas)
	}
}
