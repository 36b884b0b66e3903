package registry

import (
	"cmp"
	"context"
	"io/fs"
	"strconv"
	"strings"
)

const (
	maxModelSearch   = 1000
	defModelSearch   = 100
	maxVersionSearch = 200000
	defVersionSearch = 10000
	defHistory       = 25000
)

func (s *Server) registryRoutes() map[string]handler {
	return map[string]handler{
		"POST registered-models/create":              s.createModel,
		"GET registered-models/get":                  s.getModel,
		"GET registered-models/search":               s.searchModels,
		"PATCH registered-models/update":             s.updateModel,
		"POST registered-models/rename":              s.renameModel,
		"DELETE registered-models/delete":            s.deleteModel,
		"POST registered-models/set-tag":             s.setModelTag,
		"DELETE registered-models/delete-tag":        s.deleteModelTag,
		"POST registered-models/get-latest-versions": s.latestVersions,
		"GET registered-models/get-latest-versions":  s.latestVersions,
		"POST registered-models/alias":               s.setAlias,
		"DELETE registered-models/alias":             s.deleteAlias,
		"GET registered-models/alias":                s.getAlias,
		"POST model-versions/create":                 s.createVersion,
		"GET model-versions/get":                     s.getVersion,
		"GET model-versions/search":                  s.searchVersions,
		"PATCH model-versions/update":                s.updateVersion,
		"DELETE model-versions/delete":               s.deleteVersion,
		"POST model-versions/set-tag":                s.setVersionTag,
		"DELETE model-versions/delete-tag":           s.deleteVersionTag,
		"POST model-versions/transition-stage":       s.transitionStage,
		"GET model-versions/get-download-uri":        s.downloadURI,
		"POST experiments/create":                    s.createExperiment,
		"GET experiments/get-by-name":                s.getExperimentByName,
		"GET experiments/get":                        s.getExperiment,
		"POST runs/create":                           s.createRun,
		"POST runs/update":                           s.updateRun,
		"GET runs/get":                               s.getRun,
		"POST runs/log-metric":                       s.logMetric,
		"POST runs/log-batch":                        s.logBatch,
		"POST runs/log-parameter":                    s.logParam,
		"POST runs/set-tag":                          s.setRunTag,
		"GET metrics/get-history":                    s.metricHistory,
	}
}

func (s *Server) ms() int64 { return s.now().UnixMilli() }

func parseVersion(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, apiErr(CodeInvalidParam, "Parameter 'version' must be an integer, got '%s'.", v)
	}
	return n, nil
}

func pageSize(req, def, max int) (int, error) {
	switch {
	case req == 0:
		return def, nil
	case req < 0 || req > max:
		return 0, apiErr(CodeInvalidParam, "Invalid value for max_results. It must be at most %d, but got value %d", max, req)
	}
	return req, nil
}

type nameReq struct {
	Name string `json:"name" required:"true"`
}

func (s *Server) createModel(r *request) (any, error) {
	var in struct {
		Name        string `json:"name" required:"true"`
		Tags        []Tag  `json:"tags"`
		Description string `json:"description"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	m, err := s.store.createModel(r.Context(), in.Name, in.Description, r.user, in.Tags, s.ms())
	if err != nil {
		return nil, err
	}
	return map[string]any{"registered_model": m}, nil
}

func (s *Server) getModel(r *request) (any, error) {
	var in nameReq
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	m, err := s.store.getModel(r.Context(), s.store.db, in.Name)
	if err != nil {
		return nil, err
	}
	s.refreshAll(r.Context(), m.LatestVersions)
	return map[string]any{"registered_model": m}, nil
}

func (s *Server) searchModels(r *request) (any, error) {
	var in struct {
		Filter     string   `json:"filter"`
		MaxResults int      `json:"max_results"`
		OrderBy    []string `json:"order_by"`
		PageToken  string   `json:"page_token"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	max, err := pageSize(in.MaxResults, defModelSearch, maxModelSearch)
	if err != nil {
		return nil, err
	}
	offset, err := decodePageToken(in.PageToken)
	if err != nil {
		return nil, err
	}
	models, more, err := s.store.searchModels(r.Context(), in.Filter, in.OrderBy, max, offset)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if len(models) > 0 {
		out["registered_models"] = models
	}
	if more {
		out["next_page_token"] = encodePageToken(offset + max)
	}
	return out, nil
}

func (s *Server) updateModel(r *request) (any, error) {
	var in struct {
		Name        string `json:"name" required:"true"`
		Description string `json:"description"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	m, err := s.store.updateModel(r.Context(), in.Name, in.Description, s.ms())
	if err != nil {
		return nil, err
	}
	return map[string]any{"registered_model": m}, nil
}

func (s *Server) renameModel(r *request) (any, error) {
	var in struct {
		Name    string `json:"name" required:"true"`
		NewName string `json:"new_name" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	m, err := s.store.renameModel(r.Context(), in.Name, in.NewName, s.ms())
	if err != nil {
		return nil, err
	}
	return map[string]any{"registered_model": m}, nil
}

func (s *Server) deleteModel(r *request) (any, error) {
	var in nameReq
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	return nil, s.store.deleteModel(r.Context(), in.Name)
}

func (s *Server) setModelTag(r *request) (any, error) {
	var in struct {
		Name  string `json:"name" required:"true"`
		Key   string `json:"key" required:"true"`
		Value string `json:"value"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	return nil, s.store.setModelTag(r.Context(), in.Name, in.Key, in.Value)
}

func (s *Server) deleteModelTag(r *request) (any, error) {
	var in struct {
		Name string `json:"name" required:"true"`
		Key  string `json:"key" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	return nil, s.store.deleteModelTag(r.Context(), in.Name, in.Key)
}

func (s *Server) latestVersions(r *request) (any, error) {
	var in struct {
		Name   string   `json:"name" required:"true"`
		Stages []string `json:"stages"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	for _, st := range in.Stages {
		if canonicalStage(st) == "" {
			return nil, apiErr(CodeInvalidParam, "Invalid Model Version stage: %s. Value must be one of None, Staging, Production, Archived.", st)
		}
	}
	if err := modelExists(r.Context(), s.store.db, in.Name); err != nil {
		return nil, err
	}
	vs, err := s.store.latestVersions(r.Context(), s.store.db, in.Name, in.Stages)
	if err != nil {
		return nil, err
	}
	s.refreshAll(r.Context(), vs)
	if len(vs) == 0 {
		return nil, nil
	}
	return map[string]any{"model_versions": vs}, nil
}

func (s *Server) setAlias(r *request) (any, error) {
	var in struct {
		Name    string `json:"name" required:"true"`
		Alias   string `json:"alias" required:"true"`
		Version string `json:"version" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if err := validAlias(in.Alias); err != nil {
		return nil, err
	}
	v, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	return nil, s.store.setAlias(r.Context(), in.Name, in.Alias, v)
}

// validAlias follows MLflow: no "latest", no version-like "v<N>" names.
func validAlias(a string) error {
	lower := strings.ToLower(a)
	if lower == "latest" {
		return apiErr(CodeInvalidParam, "'%s' alias name (case insensitive) is reserved.", a)
	}
	if len(lower) > 1 && lower[0] == 'v' {
		if _, err := strconv.Atoi(lower[1:]); err == nil {
			return apiErr(CodeInvalidParam, "Version alias name '%s' is reserved.", a)
		}
	}
	if len(a) > 255 {
		return apiErr(CodeInvalidParam, "Alias name exceeds the maximum length of 255 characters.")
	}
	return nil
}

func (s *Server) deleteAlias(r *request) (any, error) {
	var in struct {
		Name  string `json:"name" required:"true"`
		Alias string `json:"alias" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	return nil, s.store.deleteAlias(r.Context(), in.Name, in.Alias)
}

func (s *Server) getAlias(r *request) (any, error) {
	var in struct {
		Name  string `json:"name" required:"true"`
		Alias string `json:"alias" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	v, err := s.store.getAlias(r.Context(), in.Name, in.Alias)
	if err != nil {
		return nil, err
	}
	s.refresh(r.Context(), v)
	return map[string]any{"model_version": v}, nil
}

func (s *Server) createVersion(r *request) (any, error) {
	var in struct {
		Name        string `json:"name" required:"true"`
		Source      string `json:"source" required:"true"`
		RunID       string `json:"run_id"`
		Tags        []Tag  `json:"tags"`
		RunLink     string `json:"run_link"`
		Description string `json:"description"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if strings.Contains(in.Source, "..") {
		return nil, apiErr(CodeInvalidParam, "Invalid model version source: '%s'. Source paths cannot contain '..'.", in.Source)
	}
	if in.RunID != "" {
		if _, err := s.store.runInfo(r.Context(), s.store.db, in.RunID); err != nil {
			return nil, err
		}
	}
	status := StatusReady
	if !s.sourcePresent(in.Source) {
		status = StatusPending
	}
	v, err := s.store.createVersion(r.Context(), newVersion{
		name: in.Name, source: in.Source, runID: in.RunID, runLink: in.RunLink,
		desc: in.Description, user: r.user, status: status, tags: in.Tags,
	}, s.ms())
	if err != nil {
		return nil, err
	}
	return map[string]any{"model_version": v}, nil
}

// sourcePresent reports whether a version's artifacts are in place. Only
// sources served by this server's artifact proxy can be missing: such a
// version stays PENDING_REGISTRATION until its files are uploaded, then
// turns READY. Any other source is READY at once, as in MLflow.
func (s *Server) sourcePresent(source string) bool {
	rest, ok := strings.CutPrefix(source, "mlflow-artifacts:")
	if !ok {
		return true
	}
	rest = strings.TrimLeft(rest, "/")
	if rest == "" {
		return true
	}
	_, err := fs.Stat(s.artifacts.FS(), rest)
	return err == nil
}

// refresh moves a pending version to READY once its artifacts exist.
func (s *Server) refresh(ctx context.Context, v *ModelVersion) {
	if v.Status != StatusPending || !s.sourcePresent(v.Source) {
		return
	}
	n, _ := strconv.ParseInt(v.Version, 10, 64)
	if err := s.store.setVersionStatus(ctx, v.Name, n, StatusReady, s.ms()); err == nil {
		v.Status = StatusReady
	}
}

func (s *Server) refreshAll(ctx context.Context, vs []ModelVersion) {
	for i := range vs {
		s.refresh(ctx, &vs[i])
	}
}

type versionReq struct {
	Name    string `json:"name" required:"true"`
	Version string `json:"version" required:"true"`
}

func (s *Server) getVersion(r *request) (any, error) {
	var in versionReq
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	v, err := s.store.getVersion(r.Context(), s.store.db, in.Name, n)
	if err != nil {
		return nil, err
	}
	s.refresh(r.Context(), v)
	return map[string]any{"model_version": v}, nil
}

func (s *Server) searchVersions(r *request) (any, error) {
	var in struct {
		Filter     string   `json:"filter"`
		MaxResults int      `json:"max_results"`
		OrderBy    []string `json:"order_by"`
		PageToken  string   `json:"page_token"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	max, err := pageSize(in.MaxResults, defVersionSearch, maxVersionSearch)
	if err != nil {
		return nil, err
	}
	offset, err := decodePageToken(in.PageToken)
	if err != nil {
		return nil, err
	}
	vs, more, err := s.store.searchVersions(r.Context(), in.Filter, in.OrderBy, max, offset)
	if err != nil {
		return nil, err
	}
	s.refreshAll(r.Context(), vs)
	out := map[string]any{}
	if len(vs) > 0 {
		out["model_versions"] = vs
	}
	if more {
		out["next_page_token"] = encodePageToken(offset + max)
	}
	return out, nil
}

func (s *Server) updateVersion(r *request) (any, error) {
	var in struct {
		Name        string `json:"name" required:"true"`
		Version     string `json:"version" required:"true"`
		Description string `json:"description"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	v, err := s.store.updateVersion(r.Context(), in.Name, n, in.Description, s.ms())
	if err != nil {
		return nil, err
	}
	return map[string]any{"model_version": v}, nil
}

func (s *Server) deleteVersion(r *request) (any, error) {
	var in versionReq
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	return nil, s.store.deleteVersion(r.Context(), in.Name, n)
}

func (s *Server) setVersionTag(r *request) (any, error) {
	var in struct {
		Name    string `json:"name" required:"true"`
		Version string `json:"version" required:"true"`
		Key     string `json:"key" required:"true"`
		Value   string `json:"value"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	return nil, s.store.setVersionTag(r.Context(), in.Name, n, in.Key, in.Value)
}

func (s *Server) deleteVersionTag(r *request) (any, error) {
	var in struct {
		Name    string `json:"name" required:"true"`
		Version string `json:"version" required:"true"`
		Key     string `json:"key" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	return nil, s.store.deleteVersionTag(r.Context(), in.Name, n, in.Key)
}

func (s *Server) transitionStage(r *request) (any, error) {
	var in struct {
		Name    string `json:"name" required:"true"`
		Version string `json:"version" required:"true"`
		Stage   string `json:"stage" required:"true"`
		Archive bool   `json:"archive_existing_versions"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	stage := canonicalStage(in.Stage)
	if stage == "" {
		return nil, apiErr(CodeInvalidParam, "Invalid Model Version stage: %s. Value must be one of None, Staging, Production, Archived.", in.Stage)
	}
	v, err := s.store.transitionStage(r.Context(), in.Name, n, stage, in.Archive, s.ms())
	if err != nil {
		return nil, err
	}
	return map[string]any{"model_version": v}, nil
}

func (s *Server) downloadURI(r *request) (any, error) {
	var in versionReq
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	v, err := s.store.getVersion(r.Context(), s.store.db, in.Name, n)
	if err != nil {
		return nil, err
	}
	uri := v.Source
	if rest, ok := strings.CutPrefix(v.Source, "runs:/"); ok {
		runID, path, _ := strings.Cut(rest, "/")
		if info, err := s.store.runInfo(r.Context(), s.store.db, runID); err == nil {
			uri = strings.TrimRight(info.ArtifactURI, "/") + "/" + path
		}
	}
	return map[string]any{"artifact_uri": uri}, nil
}

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
	return map[string]any{"experiment_id": id}, nil
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
	return map[string]any{"experiment": e}, nil
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
	return map[string]any{"experiment": e}, nil
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
	return map[string]any{"run": run}, nil
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
	return map[string]any{"run_info": info}, nil
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
	return map[string]any{"run": run}, nil
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
	out := map[string]any{}
	if len(ms) > 0 {
		out["metrics"] = ms
	}
	if more {
		out["next_page_token"] = encodePageToken(offset + max)
	}
	return out, nil
}
