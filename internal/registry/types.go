package registry

// Wire types of MLflow's REST API (mlflow/protos/model_registry.proto and
// service.proto): snake_case names, int64 as JSON numbers, enums as names,
// unset fields omitted.

// Tag is a key/value pair on a model, version, run or experiment.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Alias maps an alias of a registered model to a version number.
type Alias struct {
	Alias   string `json:"alias"`
	Version string `json:"version"`
}

// RegisteredModel is a named model in the registry.
type RegisteredModel struct {
	Name                 string         `json:"name"`
	CreationTimestamp    int64          `json:"creation_timestamp,omitempty"`
	LastUpdatedTimestamp int64          `json:"last_updated_timestamp,omitempty"`
	UserID               string         `json:"user_id,omitempty"`
	Description          string         `json:"description,omitempty"`
	LatestVersions       []ModelVersion `json:"latest_versions,omitempty"`
	Tags                 []Tag          `json:"tags,omitempty"`
	Aliases              []Alias        `json:"aliases,omitempty"`
}

// Model version statuses.
const (
	StatusPending = "PENDING_REGISTRATION"
	StatusFailed  = "FAILED_REGISTRATION"
	StatusReady   = "READY"
)

// ModelVersion is one version of a registered model. Version is MLflow's
// version number as a decimal string ("3").
type ModelVersion struct {
	Name                 string   `json:"name"`
	Version              string   `json:"version"`
	CreationTimestamp    int64    `json:"creation_timestamp,omitempty"`
	LastUpdatedTimestamp int64    `json:"last_updated_timestamp,omitempty"`
	UserID               string   `json:"user_id,omitempty"`
	CurrentStage         string   `json:"current_stage,omitempty"`
	Description          string   `json:"description,omitempty"`
	Source               string   `json:"source,omitempty"`
	RunID                string   `json:"run_id,omitempty"`
	Status               string   `json:"status,omitempty"`
	StatusMessage        string   `json:"status_message,omitempty"`
	Tags                 []Tag    `json:"tags,omitempty"`
	RunLink              string   `json:"run_link,omitempty"`
	Aliases              []string `json:"aliases,omitempty"`
	ModelID              string   `json:"model_id,omitempty"`
	ModelMetrics         []Metric `json:"model_metrics,omitempty"`
}

// Tag returns the value of the version's tag key and whether it is set.
func (v ModelVersion) Tag(key string) (string, bool) {
	return tagValue(v.Tags, key)
}

func tagValue(tags []Tag, key string) (string, bool) {
	for _, t := range tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// Metric is one logged value of a metric.
type Metric struct {
	Key       string  `json:"key"`
	Value     float64 `json:"value"`
	Timestamp int64   `json:"timestamp"`
	Step      int64   `json:"step"`
	RunID     string  `json:"run_id,omitempty"`
}

// Param is a run parameter.
type Param struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Experiment groups runs.
type Experiment struct {
	ExperimentID     string `json:"experiment_id"`
	Name             string `json:"name"`
	ArtifactLocation string `json:"artifact_location,omitempty"`
	LifecycleStage   string `json:"lifecycle_stage,omitempty"`
	LastUpdateTime   int64  `json:"last_update_time,omitempty"`
	CreationTime     int64  `json:"creation_time,omitempty"`
	Tags             []Tag  `json:"tags,omitempty"`
}

// RunInfo is a run's metadata.
type RunInfo struct {
	RunID          string `json:"run_id"`
	RunUUID        string `json:"run_uuid,omitempty"`
	RunName        string `json:"run_name,omitempty"`
	ExperimentID   string `json:"experiment_id"`
	UserID         string `json:"user_id,omitempty"`
	Status         string `json:"status,omitempty"`
	StartTime      int64  `json:"start_time,omitempty"`
	EndTime        int64  `json:"end_time,omitempty"`
	ArtifactURI    string `json:"artifact_uri,omitempty"`
	LifecycleStage string `json:"lifecycle_stage,omitempty"`
}

// RunData holds a run's latest metrics, params and tags.
type RunData struct {
	Metrics []Metric `json:"metrics,omitempty"`
	Params  []Param  `json:"params,omitempty"`
	Tags    []Tag    `json:"tags,omitempty"`
}

// Run is a training run whose metrics gate model versions.
type Run struct {
	Info RunInfo `json:"info"`
	Data RunData `json:"data"`
}

// Metrics returns the run's latest value of each metric.
func (r Run) Metrics() map[string]float64 {
	out := make(map[string]float64, len(r.Data.Metrics))
	for _, m := range r.Data.Metrics {
		out[m.Key] = m.Value
	}
	return out
}

// FileInfo is an entry of an artifact listing.
type FileInfo struct {
	Path     string `json:"path"`
	IsDir    bool   `json:"is_dir"`
	FileSize int64  `json:"file_size,omitempty"`
}
