package registry

import (
	"cmp"
	"context"
)

// Handlers of experiments/*, runs/* and metrics/*: the tracking side
// that model versions take their metrics from.

func (s *Server) createExperiment(r *request) (any, error) {
	var in struct {
		Name string `json:"name" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	id, err := s.store.createExperiment(r.Context(), in.Name, "mlflow-artifacts:", s.ms())
	if err != nil {
		return nil, err
	}
	return experimentIDReply{ExperimentID: id}, nil
}

func (s *Server) getExperimentByName(r *request) (any, error) {
	var in struct {
		Name string `json:"experiment_name" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	e, err := s.store.getExperiment(r.Context(), "name = ?", in.Name)
	if err != nil {
		return nil, apiErr(CodeNotFound, "Could not find experiment with name %s", in.Name)
	}
	return experimentReply{Experiment: e}, nil
}

func (s *Server) getExperiment(r *request) (any, error) {
	var in struct {
		ID string `json:"experiment_id" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	e, err := s.store.getExperiment(r.Context(), "experiment_id = ?", in.ID)
	if err != nil {
		return nil, apiErr(CodeNotFound, "No Experiment with id=%s exists", in.ID)
	}
	return experimentReply{Experiment: e}, nil
}

func (s *Server) createRun(r *request) (any, error) {
	var in struct {
		ExperimentID string `json:"experiment_id"`
		UserID       string `json:"user_id"`
		RunName      string `json:"run_name"`
		StartTime    int64  `json:"start_time"`
		Tags         []Tag  `json:"tags"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if in.ExperimentID == "" {
		in.ExperimentID = "0"
		if err := s.ensureDefaultExperiment(r.Context()); err != nil {
			return nil, err
		}
	}
	if in.StartTime == 0 {
		in.StartTime = s.ms()
	}
	user := in.UserID
	if r.user != "" {
		user = r.user
	}
	run, err := s.store.createRun(r.Context(), in.ExperimentID, in.RunName, user, in.StartTime, in.Tags)
	if err != nil {
		return nil, err
	}
	return runReply{Run: run}, nil
}

// ensureDefaultExperiment creates MLflow's "Default" experiment 0.
func (s *Server) ensureDefaultExperiment(ctx context.Context) error {
	_, err := s.store.db.ExecContext(ctx, `INSERT OR IGNORE INTO experiments (experiment_id, name, artifact_location, creation_time, last_update_time) VALUES (0, 'Default', 'mlflow-artifacts:/0', ?, ?)`, s.ms(), s.ms())
	return err
}

var runStatuses = map[string]bool{"RUNNING": true, "SCHEDULED": true, "FINISHED": true, "FAILED": true, "KILLED": true}

func (s *Server) updateRun(r *request) (any, error) {
	var in struct {
		RunID   string `json:"run_id"`
		RunUUID string `json:"run_uuid"`
		Status  string `json:"status"`
		EndTime int64  `json:"end_time"`
		RunName string `json:"run_name"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	id := cmp.Or(in.RunID, in.RunUUID)
	if id == "" {
		return nil, apiErr(CodeInvalidParam, "Missing value for required parameter 'run_id'. See the API docs for more information about request parameters.")
	}
	if in.Status != "" && !runStatuses[in.Status] {
		return nil, apiErr(CodeInvalidParam, "Invalid value for parameter 'status': %s", in.Status)
	}
	if in.EndTime == 0 && in.Status != "" && in.Status != "RUNNING" {
		in.EndTime = s.ms()
	}
	info, err := s.store.updateRun(r.Context(), id, in.Status, in.RunName, in.EndTime)
	if err != nil {
		return nil, err
	}
	return runInfoReply{RunInfo: info}, nil
}

func (s *Server) getRun(r *request) (any, error) {
	var in struct {
		RunID   string `json:"run_id"`
		RunUUID string `json:"run_uuid"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	id := cmp.Or(in.RunID, in.RunUUID)
	if id == "" {
		return nil, apiErr(CodeInvalidParam, "Missing value for required parameter 'run_id'. See the API docs for more information about request parameters.")
	}
	run, err := s.store.getRun(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return runReply{Run: run}, nil
}

func (s *Server) logMetric(r *request) (any, error) {
	var in struct {
		RunID     string   `json:"run_id" required:"true"`
		Key       string   `json:"key" required:"true"`
		Value     *float64 `json:"value"`
		Timestamp int64    `json:"timestamp"`
		Step      int64    `json:"step"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if in.Value == nil {
		return nil, apiErr(CodeInvalidParam, "Missing value for required parameter 'value'. See the API docs for more information about request parameters.")
	}
	if in.Timestamp == 0 {
		in.Timestamp = s.ms()
	}
	return nil, s.store.logBatch(r.Context(), in.RunID, []Metric{{Key: in.Key, Value: *in.Value, Timestamp: in.Timestamp, Step: in.Step}}, nil, nil)
}

func (s *Server) logParam(r *request) (any, error) {
	var in struct {
		RunID string `json:"run_id" required:"true"`
		Key   string `json:"key" required:"true"`
		Value string `json:"value"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	return nil, s.store.logBatch(r.Context(), in.RunID, nil, []Param{{Key: in.Key, Value: in.Value}}, nil)
}

func (s *Server) setRunTag(r *request) (any, error) {
	var in struct {
		RunID string `json:"run_id" required:"true"`
		Key   string `json:"key" required:"true"`
		Value string `json:"value"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	return nil, s.store.logBatch(r.Context(), in.RunID, nil, nil, []Tag{{Key: in.Key, Value: in.Value}})
}

func (s *Server) logBatch(r *request) (any, error) {
	var in struct {
		RunID   string   `json:"run_id" required:"true"`
		Metrics []Metric `json:"metrics"`
		Params  []Param  `json:"params"`
		Tags    []Tag    `json:"tags"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if len(in.Metrics)+len(in.Params)+len(in.Tags) > 1000 {
		return nil, apiErr(CodeInvalidParam, "A batch logging request can contain at most 1000 metrics, params and tags in total")
	}
	for i := range in.Metrics {
		if in.Metrics[i].Key == "" {
			return nil, apiErr(CodeInvalidParam, "Missing value for required parameter 'metrics[%d].key'.", i)
		}
		if in.Metrics[i].Timestamp == 0 {
			in.Metrics[i].Timestamp = s.ms()
		}
	}
	return nil, s.store.logBatch(r.Context(), in.RunID, in.Metrics, in.Params, in.Tags)
}

func (s *Server) metricHistory(r *request) (any, error) {
	var in struct {
		RunID      string `json:"run_id"`
		RunUUID    string `json:"run_uuid"`
		MetricKey  string `json:"metric_key" required:"true"`
		MaxResults int    `json:"max_results"`
		PageToken  string `json:"page_token"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	id := cmp.Or(in.RunID, in.RunUUID)
	if id == "" {
		return nil, apiErr(CodeInvalidParam, "Missing value for required parameter 'run_id'. See the API docs for more information about request parameters.")
	}
	max, err := pageSize(in.MaxResults, defHistory, defHistory)
	if err != nil {
		return nil, err
	}
	offset, err := decodePageToken(in.PageToken)
	if err != nil {
		return nil, err
	}
	ms, more, err := s.store.metricHistory(r.Context(), id, in.MetricKey, max, offset)
	if err != nil {
		return nil, err
	}
	out := metricsReply{Metrics: ms}
	if more {
		out.NextPageToken = encodePageToken(offset + max)
	}
	return out, nil
}
