package registry

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// CreateExperiment creates an experiment and returns its id.
func (c *Client) CreateExperiment(ctx context.Context, name string) (string, error) {
	var out experimentIDReply
	if err := c.send(ctx, http.MethodPost, "experiments/create", map[string]any{"name": name}, &out); err != nil {
		return "", err
	}
	return out.ExperimentID, nil
}

// GetExperimentByName returns an experiment; ErrNotFound if missing.
func (c *Client) GetExperimentByName(ctx context.Context, name string) (*Experiment, error) {
	var out experimentReply
	if err := c.get(ctx, "experiments/get-by-name", url.Values{"experiment_name": {name}}, &out); err != nil {
		return nil, err
	}
	return must(out.Experiment)
}

// CreateRun starts a run in an experiment.
func (c *Client) CreateRun(ctx context.Context, experimentID, runName string, tags []Tag) (*Run, error) {
	var out runReply
	in := map[string]any{"experiment_id": experimentID, "start_time": time.Now().UnixMilli()}
	if runName != "" {
		in["run_name"] = runName
	}
	if len(tags) > 0 {
		in["tags"] = tags
	}
	if err := c.send(ctx, http.MethodPost, "runs/create", in, &out); err != nil {
		return nil, err
	}
	return must(out.Run)
}

// UpdateRun sets a run's status (RUNNING, FINISHED, FAILED, KILLED).
func (c *Client) UpdateRun(ctx context.Context, runID, status string) (*RunInfo, error) {
	var out runInfoReply
	in := map[string]any{"run_id": runID, "status": status, "end_time": time.Now().UnixMilli()}
	if err := c.send(ctx, http.MethodPost, "runs/update", in, &out); err != nil {
		return nil, err
	}
	return must(out.RunInfo)
}

// GetRun returns a run with its latest metrics.
func (c *Client) GetRun(ctx context.Context, runID string) (*Run, error) {
	var out runReply
	if err := c.get(ctx, "runs/get", url.Values{"run_id": {runID}}, &out); err != nil {
		return nil, err
	}
	return must(out.Run)
}

// LogMetric logs one metric value.
func (c *Client) LogMetric(ctx context.Context, runID, key string, value float64, step int64) error {
	in := map[string]any{"run_id": runID, "key": key, "value": value, "timestamp": time.Now().UnixMilli(), "step": step}
	return c.send(ctx, http.MethodPost, "runs/log-metric", in, nil)
}

// LogBatch logs metrics, params and tags at once.
func (c *Client) LogBatch(ctx context.Context, runID string, metrics []Metric, params []Param, tags []Tag) error {
	in := map[string]any{"run_id": runID, "metrics": metrics, "params": params, "tags": tags}
	return c.send(ctx, http.MethodPost, "runs/log-batch", in, nil)
}

// GetMetricHistory returns every logged value of a metric.
func (c *Client) GetMetricHistory(ctx context.Context, runID, key string) ([]Metric, error) {
	var all []Metric
	q := url.Values{"run_id": {runID}, "metric_key": {key}}
	for {
		var out metricsReply
		if err := c.get(ctx, "metrics/get-history", q, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Metrics...)
		if out.NextPageToken == "" {
			return all, nil
		}
		q.Set("page_token", out.NextPageToken)
	}
}

// VersionMetrics returns the offline metrics of a version: its
// model_metrics when the server reports them, else the latest metrics of
// its run. A version without either has no metrics (an empty map).
func (c *Client) VersionMetrics(ctx context.Context, v *ModelVersion) (map[string]float64, error) {
	out := map[string]float64{}
	if v.RunID != "" {
		run, err := c.GetRun(ctx, v.RunID)
		if err != nil {
			return nil, err
		}
		out = run.Metrics()
	}
	for _, m := range v.ModelMetrics {
		out[m.Key] = m.Value
	}
	return out, nil
}
