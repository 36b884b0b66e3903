package analysis

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mlcd-dev/mlcd/internal/egress"
	"io"
	"net/http"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/util/jsonpath"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/gate"
	"github.com/mlcd-dev/mlcd/internal/registry"
)

// Plugin names of mlcd's own providers, under Argo Rollouts' plugin key.
const (
	PluginRegistry  = "mlcd/registry"
	PluginGoldenSet = "mlcd/golden-set"
)

// Env is what providers may need beyond the metric.
type Env struct {
	// Registry, Model, StableVersion and CanaryVersion serve the
	// mlcd/registry plugin.
	Registry                     gate.Registry
	Model                        string
	StableVersion, CanaryVersion string
	// Egress is the policy every provider's request goes through (the
	// zero policy reaches public addresses only).
	Egress egress.Policy
	// ReadFile reads a file of the app's Git checkout (confined to it),
	// for the mlcd/golden-set plugin.
	ReadFile func(path string) ([]byte, error)
}

// Measure takes one measurement of m.
func Measure(ctx context.Context, m v1alpha1.Metric, env Env) v1alpha1.Measurement {
	started := time.Now()
	value, verdict, err := measure(ctx, m, env)
	return Measured(m, started, value, verdict, err)
}

func measure(ctx context.Context, m v1alpha1.Metric, env Env) (any, string, error) {
	p := m.Provider
	switch {
	case p.Prometheus != nil:
		v, err := prometheus(ctx, *p.Prometheus, env)
		return v, "", err
	case p.Web != nil:
		v, err := web(ctx, *p.Web, env)
		return v, "", err
	case p.Plugin != nil:
		if raw, ok := p.Plugin[PluginRegistry]; ok {
			return registryMetric(ctx, raw, env)
		}
		if raw, ok := p.Plugin[PluginGoldenSet]; ok {
			return goldenSet(ctx, raw, env)
		}
		for name := range p.Plugin {
			return nil, "", fmt.Errorf("metric provider plugin %q is not available in mlcd (it runs %s and %s)", name, PluginRegistry, PluginGoldenSet)
		}
	}
	return nil, "", errors.New("metric provider not supported by mlcd (it runs prometheus, web and the mlcd/registry and mlcd/golden-set plugins)")
}

func prometheus(ctx context.Context, p v1alpha1.PrometheusMetric, env Env) (any, error) {
	if p.Address == "" || p.Query == "" {
		return nil, errors.New("prometheus provider needs address and query")
	}
	timeout := 30 * time.Second
	if p.Timeout != nil && *p.Timeout > 0 {
		timeout = time.Duration(*p.Timeout) * time.Second
	}
	cfg := promapi.Config{Address: p.Address, Client: env.client(timeout, false)}
	c, err := promapi.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, _, err := promv1.NewAPI(c).Query(ctx, p.Query, time.Now())
	if err != nil {
		return nil, fmt.Errorf("prometheus query %q: %w", p.Query, err)
	}
	switch x := v.(type) {
	case *model.Scalar:
		return float64(x.Value), nil
	case model.Vector:
		out := make([]any, 0, len(x))
		for _, s := range x {
			out = append(out, float64(s.Value))
		}
		return out, nil
	}
	return nil, fmt.Errorf("prometheus query %q returned %s, not a scalar or vector", p.Query, v.Type())
}

func web(ctx context.Context, w v1alpha1.WebMetric, env Env) (any, error) {
	timeout := 10 * time.Second
	if w.TimeoutSeconds > 0 {
		timeout = time.Duration(w.TimeoutSeconds) * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := w.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	switch {
	case len(w.JSONBody) > 0:
		body = bytes.NewReader(w.JSONBody)
	case w.Body != "":
		body = strings.NewReader(w.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.URL, body)
	if err != nil {
		return nil, err
	}
	for _, h := range w.Headers {
		req.Header.Set(h.Key, h.Value)
	}
	if len(w.JSONBody) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	doc, err := getJSON(env.client(timeout, w.Insecure), req)
	if err != nil {
		return nil, fmt.Errorf("web metric: %w", err)
	}
	path := w.JSONPath
	if path == "" {
		path = "{$}"
	}
	jp, err := parseJSONPath(path)
	if err != nil {
		return nil, fmt.Errorf("web metric: %w", err)
	}
	values, err := jsonPathValues(jp, doc)
	if err != nil {
		return nil, fmt.Errorf("web metric: jsonPath %q: %w", path, err)
	}
	switch len(values) {
	case 0:
		return nil, fmt.Errorf("web metric: jsonPath %q matched nothing", path)
	case 1:
		return values[0], nil
	}
	return values, nil
}

// client is an HTTP client through env's egress policy, timing out
// after timeout; insecure skips TLS verification (the web provider's
// `insecure`).
func (env Env) client(timeout time.Duration, insecure bool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the metric's explicit opt-in
	}
	return env.Egress.Wrap(tr, timeout)
}

// getJSON sends req and returns its JSON reply (at most 1 MiB); a status
// other than 2xx is an error naming the URL without credentials.
func getJSON(client *http.Client, req *http.Request) (any, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s answered %s", req.URL.Redacted(), resp.Status)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("reply is not JSON: %w", err)
	}
	return doc, nil
}

// parseJSONPath parses a Kubernetes JSONPath ("{$.data.errorRate}").
func parseJSONPath(path string) (*jsonpath.JSONPath, error) {
	jp := jsonpath.New("metric")
	if err := jp.Parse(path); err != nil {
		return nil, fmt.Errorf("jsonPath %q: %w", path, err)
	}
	return jp, nil
}

// jsonPathValues are the values jp finds in doc.
func jsonPathValues(jp *jsonpath.JSONPath, doc any) ([]any, error) {
	results, err := jp.FindResults(doc)
	if err != nil {
		return nil, err
	}
	var values []any
	for _, rs := range results {
		for _, r := range rs {
			values = append(values, r.Interface())
		}
	}
	return values, nil
}

// RegistryMetric is the mlcd/registry plugin's configuration: compare the
// canary version's logged metric with the stable version's (or the
// version an alias names). Higher is better unless LowerIsBetter.
type RegistryMetric struct {
	Metric        string  `json:"metric"`
	CompareTo     string  `json:"compareTo,omitempty"`
	Tolerance     float64 `json:"tolerance,omitempty"`
	LowerIsBetter bool    `json:"lowerIsBetter,omitempty"`
}

// registryMetric returns {candidate, baseline, delta} and, for a metric
// without conditions, the verdict: the candidate no worse than the
// baseline by more than tolerance.
func registryMetric(ctx context.Context, raw json.RawMessage, env Env) (any, string, error) {
	var cfg RegistryMetric
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, "", fmt.Errorf("%s: %w", PluginRegistry, err)
	}
	if cfg.Metric == "" {
		return nil, "", fmt.Errorf("%s: metric is required", PluginRegistry)
	}
	if env.Registry == nil {
		return nil, "", fmt.Errorf("%s: no model registry configured", PluginRegistry)
	}
	metricOf := func(v *registry.ModelVersion) (float64, error) {
		ms, err := env.Registry.VersionMetrics(ctx, v)
		if err != nil {
			return 0, err
		}
		x, ok := ms[cfg.Metric]
		if !ok {
			return 0, fmt.Errorf("%s version %s logged no metric %s", env.Model, v.Version, cfg.Metric)
		}
		return x, nil
	}
	cand, err := registry.Resolve(ctx, env.Registry, env.Model, env.CanaryVersion)
	if err != nil {
		return nil, "", err
	}
	var base *registry.ModelVersion
	switch cfg.CompareTo {
	case "", "stable":
		base, err = registry.Resolve(ctx, env.Registry, env.Model, env.StableVersion)
	default:
		base, err = env.Registry.GetVersionByAlias(ctx, env.Model, cfg.CompareTo)
	}
	if err != nil {
		return nil, "", err
	}
	c, err := metricOf(cand)
	if err != nil {
		return nil, "", err
	}
	b, err := metricOf(base)
	if err != nil {
		return nil, "", err
	}
	delta := c - b
	worse := delta < -cfg.Tolerance
	if cfg.LowerIsBetter {
		worse = delta > cfg.Tolerance
	}
	verdict := Successful
	if worse {
		verdict = Failed
	}
	return map[string]any{"candidate": c, "baseline": b, "delta": delta}, verdict, nil
}
