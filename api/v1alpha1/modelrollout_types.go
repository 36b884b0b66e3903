package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ModelRollout is one canary rollout of a model version by an
// Application (mlcd.io/v1alpha1, named after and owned by the app, in its
// namespace). Its status is the step machine's state, so a rollout
// survives controller restarts; `kubectl get modelrollouts -A` lists them.
// +kubebuilder:object:root=true
type ModelRollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ModelRolloutSpec   `json:"spec"`
	Status            ModelRolloutStatus `json:"status,omitempty"`
}

// ModelRolloutList is a list of ModelRollouts.
// +kubebuilder:object:root=true
type ModelRolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModelRollout `json:"items"`
}

// ModelRolloutSpec says what rolls out where, fixed when the rollout
// starts.
type ModelRolloutSpec struct {
	Application string `json:"application"`
	Model       string `json:"model"`
	Environment string `json:"environment"`
	// Revision is the commit that named the canary version.
	Revision      string `json:"revision"`
	StableVersion string `json:"stableVersion"`
	CanaryVersion string `json:"canaryVersion"`
	// Workloads are the Deployments rolled out (namespace/name); each gets
	// a <name>-canary Deployment while the rollout runs.
	Workloads []RolloutWorkload `json:"workloads"`
	Strategy  CanaryStrategy    `json:"strategy"`
	OnFailure string            `json:"onFailure,omitempty"`
	// Watch keeps analysis running for a while after 100 %.
	Watch *RolloutWatch `json:"watch,omitempty"`
	// RepoURL and Branch are where a revert commit goes.
	RepoURL string `json:"repoURL,omitempty"`
	Branch  string `json:"branch,omitempty"`
}

// RolloutWorkload is one Deployment of a rollout.
type RolloutWorkload struct {
	// Kind is Deployment (default) or InferenceService (KServe: the
	// steps drive spec.predictor.canaryTrafficPercent).
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Replicas is a Deployment's full scale when the rollout started.
	Replicas int32 `json:"replicas,omitempty"`
	// StableSpec is an InferenceService's spec before the rollout, put
	// back by an abort.
	StableSpec *runtime.RawExtension `json:"stableSpec,omitempty"`
	// StableAnnotations are its mlcd.io lineage annotations then.
	StableAnnotations map[string]string `json:"stableAnnotations,omitempty"`
}

// KindInferenceService is KServe's kind in a RolloutWorkload.
const KindInferenceService = "InferenceService"

// ModelRolloutStatus is the state of the step machine.
type ModelRolloutStatus struct {
	Phase            string       `json:"phase,omitempty"`
	PauseReason      string       `json:"pauseReason,omitempty"`
	PausedAt         *metav1.Time `json:"pausedAt,omitempty"`
	Message          string       `json:"message,omitempty"`
	CurrentStepIndex int          `json:"currentStepIndex"`
	// Weight is the canary's share in percent; Total the replicas of
	// both sides together; Canary/Stable each side's target.
	Weight      int32 `json:"weight"`
	Total       int32 `json:"total,omitempty"`
	Canary      int32 `json:"canaryReplicas"`
	Stable      int32 `json:"stableReplicas"`
	CanaryReady int32 `json:"canaryReadyReplicas"`
	StableReady int32 `json:"stableReadyReplicas"`
	// Analysis lists the analysis runs: one per analysis step, plus the
	// background run ("background").
	Analysis  []AnalysisRunStatus `json:"analysis,omitempty"`
	StartedAt *metav1.Time        `json:"startedAt,omitempty"`
	// CompletedAt is when the rollout reached Healthy or Degraded.
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// WatchUntil is the end of the watch window after a completed
	// rollout (spec.watch); its measurements are the "watch" run.
	WatchUntil *metav1.Time `json:"watchUntil,omitempty"`
	// RevertCommit is the commit mlcd pushed to revert Revision after a
	// failure (onFailure: revert); RevertError why it could not.
	RevertCommit   string `json:"revertCommit,omitempty"`
	RevertError    string `json:"revertError,omitempty"`
	RevertAttempts int    `json:"revertAttempts,omitempty"`
	// RevertAttemptAt is the last attempt; the next waits 2^attempts s.
	RevertAttemptAt *metav1.Time `json:"revertAttemptAt,omitempty"`
}

// AnalysisRunStatus is one analysis run with every measurement kept.
type AnalysisRunStatus struct {
	Name      string         `json:"name"`
	Step      int            `json:"step"`
	Phase     string         `json:"phase"`
	Message   string         `json:"message,omitempty"`
	StartedAt metav1.Time    `json:"startedAt"`
	Metrics   []MetricResult `json:"metrics,omitempty"`
}

// MetricResult is one metric's measurements and counts (Argo Rollouts'
// names).
type MetricResult struct {
	Name               string        `json:"name"`
	Phase              string        `json:"phase"`
	Message            string        `json:"message,omitempty"`
	DryRun             bool          `json:"dryRun,omitempty"`
	Count              int32         `json:"count"`
	Successful         int32         `json:"successful"`
	Failed             int32         `json:"failed"`
	Inconclusive       int32         `json:"inconclusive"`
	Error              int32         `json:"error"`
	ConsecutiveError   int32         `json:"consecutiveError"`
	ConsecutiveSuccess int32         `json:"consecutiveSuccess"`
	Measurements       []Measurement `json:"measurements,omitempty"`
}

// Measurement is one measured value.
type Measurement struct {
	Phase      string       `json:"phase"`
	Value      string       `json:"value,omitempty"`
	Message    string       `json:"message,omitempty"`
	StartedAt  metav1.Time  `json:"startedAt"`
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
}

// RolloutActionAnnotation on a ModelRollout asks the controller for a
// person's action: promote, abort or retry (`mlcd rollout …`). The
// controller removes it once acted on.
const RolloutActionAnnotation = "mlcd.io/rollout-action"
