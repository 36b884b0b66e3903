package registry

// The JSON envelopes of MLflow's answers, in one place for the client and
// the embedded server, so every wire name is written once. Lists omit
// empty pages, as MLflow does.

type modelReply struct {
	RegisteredModel *RegisteredModel `json:"registered_model"`
}

type modelsReply struct {
	RegisteredModels []RegisteredModel `json:"registered_models,omitempty"`
	NextPageToken    string            `json:"next_page_token,omitempty"`
}

type versionReply struct {
	ModelVersion *ModelVersion `json:"model_version"`
}

type versionsReply struct {
	ModelVersions []ModelVersion `json:"model_versions,omitempty"`
	NextPageToken string         `json:"next_page_token,omitempty"`
}

type downloadURIReply struct {
	ArtifactURI string `json:"artifact_uri"`
}

type experimentReply struct {
	Experiment *Experiment `json:"experiment"`
}

type experimentIDReply struct {
	ExperimentID string `json:"experiment_id"`
}

type runReply struct {
	Run *Run `json:"run"`
}

type runInfoReply struct {
	RunInfo *RunInfo `json:"run_info"`
}

type metricsReply struct {
	Metrics       []Metric `json:"metrics,omitempty"`
	NextPageToken string   `json:"next_page_token,omitempty"`
}

type filesReply struct {
	Files []FileInfo `json:"files"`
}

// must returns the object an answer carried, or an error when a server
// answered success without it.
func must[T any](v *T) (*T, error) {
	if v == nil {
		return nil, &Error{Code: CodeInternal, Message: "the registry answered without the object"}
	}
	return v, nil
}
