package analysis

import (
	"net/netip"

	"context"
	"encoding/json"
	"fmt"
	"github.com/mlcd-dev/mlcd/internal/egress"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

func TestEvaluateArgoRules(t *testing.T) {
	for _, c := range []struct {
		success, failure string
		result           any
		want             string
	}{
		{"", "", 1.0, Successful},
		{"result < 0.05", "", 0.01, Successful},
		{"result < 0.05", "", 0.2, Failed},
		{"", "result > 0.1", 0.2, Failed},
		{"", "result > 0.1", 0.05, Successful},
		{"result < 0.05", "result > 0.1", 0.07, Inconclusive},
		{"result[0] < 0.05", "", []any{0.01}, Successful},
		{"result.ok == true", "", map[string]any{"ok": true}, Successful},
		{"asFloat(result) >= 0.9", "", "0.95", Successful},
		{"default(0) == 0", "", nil, Successful},
	} {
		got, err := Evaluate(v1alpha1.Metric{Name: "m", SuccessCondition: c.success, FailureCondition: c.failure}, c.result)
		if err != nil || got != c.want {
			t.Errorf("Evaluate(%q, %q, %v) = %s, %v; want %s", c.success, c.failure, c.result, got, err, c.want)
		}
	}
	if p, err := Evaluate(v1alpha1.Metric{SuccessCondition: "result"}, 1.0); p != Error || err == nil {
		t.Errorf("a non-boolean condition = %s, %v; want Error", p, err)
	}
}

func TestAssessLimitsAndCounts(t *testing.T) {
	three := intstr.FromInt32(3)
	one := intstr.FromInt32(1)
	m := v1alpha1.Metric{Name: "m", Interval: "1s", Count: &three, SuccessCondition: "result < 1"}
	record := func(m v1alpha1.Metric, phases ...string) v1alpha1.MetricResult {
		var r v1alpha1.MetricResult
		for _, p := range phases {
			Record(m, &r, v1alpha1.Measurement{Phase: p, FinishedAt: nowPtr()}, 2)
		}
		return r
	}
	for _, c := range []struct {
		name   string
		m      v1alpha1.Metric
		phases []string
		want   string
	}{
		{"running until count", m, []string{Successful, Successful}, Running},
		{"count reached", m, []string{Successful, Successful, Successful}, Successful},
		{"failureLimit 0: one failure fails", m, []string{Successful, Failed}, Failed},
		{"inconclusive pauses", m, []string{Inconclusive}, Inconclusive},
		{"errors below the limit keep running", m, []string{Error, Error, Error, Error}, Running},
		{"a fifth consecutive error is an error", m, []string{Error, Error, Error, Error, Error}, Error},
		{"failureLimit 1 tolerates one", withFailureLimit(m, &one), []string{Failed, Successful, Successful}, Successful},
		{"no interval: one measurement", v1alpha1.Metric{Name: "x"}, []string{Successful}, Successful},
	} {
		r := record(c.m, c.phases...)
		if r.Phase != c.want {
			t.Errorf("%s: phase %s, want %s (%+v)", c.name, r.Phase, c.want, r)
		}
		if len(r.Measurements) > 2 {
			t.Errorf("%s: %d measurements kept, retention 2", c.name, len(r.Measurements))
		}
	}
}

func withFailureLimit(m v1alpha1.Metric, l *intstr.IntOrString) v1alpha1.Metric {
	m.FailureLimit = l
	return m
}

func TestResolveArgs(t *testing.T) {
	def := "0.05"
	tmpl := v1alpha1.AnalysisTemplateSpec{
		Args:    []v1alpha1.TemplateArgument{{Name: "service"}, {Name: "threshold", Value: &def}},
		Metrics: []v1alpha1.Metric{{Name: "error-rate", SuccessCondition: "result[0] < {{args.threshold}}", Provider: v1alpha1.MetricProvider{Prometheus: &v1alpha1.PrometheusMetric{Address: "http://p", Query: `rate(errors{service="{{args.service}}"}[1m])`}}}},
	}
	spec, err := Resolve([]v1alpha1.AnalysisTemplateSpec{tmpl}, []v1alpha1.AnalysisArg{{Name: "service", Value: "fraud-detection"}})
	if err != nil {
		t.Fatal(err)
	}
	m := spec.Metrics[0]
	if m.Provider.Prometheus.Query != `rate(errors{service="fraud-detection"}[1m])` || m.SuccessCondition != "result[0] < 0.05" {
		t.Errorf("substituted metric = %+v %+v", m, m.Provider.Prometheus)
	}
	if _, err := Resolve([]v1alpha1.AnalysisTemplateSpec{tmpl}, nil); err == nil || !strings.Contains(err.Error(), `"service" has no value`) {
		t.Errorf("missing arg error = %v", err)
	}
	three := intstr.FromInt32(3)
	bad := v1alpha1.AnalysisTemplateSpec{Metrics: []v1alpha1.Metric{{Name: "n", Count: &three}}}
	if _, err := Resolve([]v1alpha1.AnalysisTemplateSpec{bad}, nil); err == nil || !strings.Contains(err.Error(), "needs an interval") {
		t.Errorf("count without interval error = %v", err)
	}
}

func TestRunPhaseSkipsDryRun(t *testing.T) {
	spec := Spec{Metrics: []v1alpha1.Metric{{Name: "a"}, {Name: "b"}}, DryRun: map[string]bool{"b": true}}
	p, _ := RunPhase(spec, []v1alpha1.MetricResult{{Name: "a", Phase: Successful}, {Name: "b", Phase: Failed}})
	if p != Successful {
		t.Errorf("dry-run failure counted: %s", p)
	}
	spec.DryRun = nil
	p, msg := RunPhase(spec, []v1alpha1.MetricResult{{Name: "a", Phase: Successful}, {Name: "b", Phase: Failed, Count: 1, Failed: 1}})
	if p != Failed || !strings.Contains(msg, "metric b failed") {
		t.Errorf("run = %s %q", p, msg)
	}
}

func TestWebProvider(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "t" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"data": {"errorRate": 0.02, "ok": true}}`)
	}))
	defer srv.Close()
	m := v1alpha1.Metric{Name: "web", SuccessCondition: "result < 0.05", Provider: v1alpha1.MetricProvider{Web: &v1alpha1.WebMetric{
		URL: srv.URL, JSONPath: "{$.data.errorRate}", Headers: []v1alpha1.WebHeader{{Key: "X-Token", Value: "t"}}}}}
	local := Env{Egress: egress.Policy{AllowLoopback: true}}
	meas := Measure(context.Background(), m, local)
	if meas.Phase != Successful || meas.Value != "0.02" {
		t.Errorf("measurement = %+v", meas)
	}
	m.Provider.Web.Headers = nil
	meas = Measure(context.Background(), m, local)
	if meas.Phase != Error || !strings.Contains(meas.Message, "401") {
		t.Errorf("unauthorised measurement = %+v", meas)
	}
}

// A tenant's web metric aimed at the cloud's metadata service (by
// address, by a name resolving to it, or by a redirect) is refused with a
// reason naming the policy; loopback is refused unless the admin allows
// it; and a measurement stores at most MaxValueBytes of what it selected.
func TestWebProviderEgress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/", http.StatusFound)
		case "/huge":
			fmt.Fprintf(w, `{"secret": %q}`, strings.Repeat("s", 100<<10))
		default:
			fmt.Fprint(w, `{"v": 1}`)
		}
	}))
	defer srv.Close()
	web := func(url string) v1alpha1.Metric {
		return v1alpha1.Metric{Name: "web", Provider: v1alpha1.MetricProvider{Web: &v1alpha1.WebMetric{URL: url}}}
	}
	resolver := func(ctx context.Context, host string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
	}
	for name, c := range map[string]struct {
		url  string
		env  Env
		want string
	}{
		"metadata address":      {"http://169.254.169.254/latest/meta-data/", Env{Egress: egress.Policy{AllowLoopback: true, AllowPrivate: true}}, "link-local"},
		"name resolving to it":  {"http://metadata.internal.example/", Env{Egress: egress.Policy{AllowPrivate: true, Resolve: resolver}}, "link-local"},
		"redirect to it":        {srv.URL + "/redirect", Env{Egress: egress.Policy{AllowLoopback: true}}, "redirect"},
		"loopback, not allowed": {srv.URL, Env{}, "loopback"},
		"IPv6 link-local":       {"http://[fe80::1]:80/", Env{Egress: egress.Policy{AllowLoopback: true}}, "link-local"},
	} {
		meas := Measure(context.Background(), web(c.url), c.env)
		if meas.Phase != Error || !strings.Contains(meas.Message, "egress policy") || !strings.Contains(meas.Message, c.want) {
			t.Errorf("%s: %s %q, want an error naming the egress policy and %q", name, meas.Phase, meas.Message, c.want)
		}
	}
	m := web(srv.URL + "/huge")
	m.Provider.Web.JSONPath = "{$}"
	meas := Measure(context.Background(), m, Env{Egress: egress.Policy{AllowLoopback: true}})
	if len(meas.Value) > MaxValueBytes+64 {
		t.Errorf("the measurement stored %d bytes of a 100 KiB reply", len(meas.Value))
	}
}

func nowPtr() *metav1.Time { n := metav1.Now(); return &n }

// TestGoldenSet sends the JSONL cases to the canary endpoint and scores
// them by exact match or numeric tolerance against the threshold.
func TestGoldenSet(t *testing.T) {
	// The "model": fraud score 0.9 for amounts over 1000, else 0.1; label
	// exact.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Amount float64 `json:"amount"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		score, label := 0.1, "ok"
		if in.Amount > 1000 {
			score, label = 0.9, "fraud"
		}
		fmt.Fprintf(w, `{"score": %g, "label": %q}`, score, label)
	}))
	defer srv.Close()
	files := map[string]string{"models/fraud-detection/golden.jsonl": `{"request": {"amount": 5000}, "expected": 0.88}
{"request": {"amount": 20}, "expected": 0.1}

{"request": {"amount": 1500}, "expected": 0.5}
{"request": {"amount": 10}, "expected": 0.12}
`}
	env := Env{Egress: egress.Policy{AllowLoopback: true}, ReadFile: func(p string) ([]byte, error) {
		if d, ok := files[p]; ok {
			return []byte(d), nil
		}
		return nil, fmt.Errorf("%s: no such file", p)
	}}
	metric := func(cfg string) v1alpha1.Metric {
		return v1alpha1.Metric{Name: "golden", Provider: v1alpha1.MetricProvider{Plugin: map[string]json.RawMessage{PluginGoldenSet: json.RawMessage(strings.ReplaceAll(cfg, "URL", srv.URL))}}}
	}
	// 3 of 4 within 0.05: passes at 0.75, fails at 0.9.
	if m := Measure(context.Background(), metric(`{"url": "URL", "file": "models/fraud-detection/golden.jsonl", "jsonPath": "{$.score}", "tolerance": 0.05, "threshold": 0.75}`), env); m.Phase != Successful || !strings.Contains(m.Value, `"score":0.75`) {
		t.Errorf("threshold 0.75: %+v", m)
	}
	if m := Measure(context.Background(), metric(`{"url": "URL", "file": "models/fraud-detection/golden.jsonl", "jsonPath": "{$.score}", "tolerance": 0.05, "threshold": 0.9}`), env); m.Phase != Failed {
		t.Errorf("threshold 0.9: %+v", m)
	}
	// Exact match without tolerance: only 0.1 == 0.1.
	if m := Measure(context.Background(), metric(`{"url": "URL", "file": "models/fraud-detection/golden.jsonl", "jsonPath": "{$.score}"}`), env); m.Phase != Failed || !strings.Contains(m.Value, `"matched":1`) {
		t.Errorf("exact: %+v", m)
	}
	// A condition over the result decides when given.
	m := metric(`{"url": "URL", "file": "models/fraud-detection/golden.jsonl", "jsonPath": "{$.score}", "tolerance": 0.05}`)
	m.SuccessCondition = "result.score >= 0.7"
	if got := Measure(context.Background(), m, env); got.Phase != Successful {
		t.Errorf("condition: %+v", got)
	}
	if got := Measure(context.Background(), metric(`{"url": "URL", "file": "missing.jsonl"}`), env); got.Phase != Error || !strings.Contains(got.Message, "missing.jsonl") {
		t.Errorf("missing file: %+v", got)
	}
}
