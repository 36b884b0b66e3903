package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"strings"
)

// Application is Argo CD's Application: a source in Git rendered and synced
// to a destination.
// +kubebuilder:object:root=true
type Application struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ApplicationSpec   `json:"spec"`
	Status            ApplicationStatus `json:"status,omitempty"`
	// Operation requests a sync now (Argo CD's field): the controller runs
	// it once, whatever the sync policy, records it in
	// status.operationState and clears it.
	Operation *Operation `json:"operation,omitempty"`
}

// Operation is a requested operation.
type Operation struct {
	Sync        *SyncOperation     `json:"sync,omitempty"`
	InitiatedBy OperationInitiator `json:"initiatedBy,omitempty"`
	Info        []Info             `json:"info,omitempty"`
	Retry       *RetryStrategy     `json:"retry,omitempty"`
}

// SyncOperation is a requested sync.
type SyncOperation struct {
	// Revision is informational: mlcd syncs the app's targetRevision.
	Revision    string   `json:"revision,omitempty"`
	Prune       bool     `json:"prune,omitempty"`
	SyncOptions []string `json:"syncOptions,omitempty"`
	DryRun      bool     `json:"dryRun,omitempty"`
	// The rest of Argo CD's sync operation, kept as given.
	SyncStrategy *runtime.RawExtension  `json:"syncStrategy,omitempty"`
	Resources    []runtime.RawExtension `json:"resources,omitempty"`
	Source       *ApplicationSource     `json:"source,omitempty"`
	Sources      []ApplicationSource    `json:"sources,omitempty"`
	Revisions    []string               `json:"revisions,omitempty"`
}

// OperationInitiator says who asked.
type OperationInitiator struct {
	Username  string `json:"username,omitempty"`
	Automated bool   `json:"automated,omitempty"`
}

// SyncRequested reports whether a sync operation waits to be run.
func (a *Application) SyncRequested() bool { return a.Operation != nil && a.Operation.Sync != nil }

// PruneEnabled reports whether a sync of the app prunes: the automated
// policy's prune, or the requested operation's.
func (a *Application) PruneEnabled() bool {
	if a.SyncRequested() && a.Operation.Sync.Prune {
		return true
	}
	return a.Spec.SyncPolicy != nil && a.Spec.SyncPolicy.Automated != nil && a.Spec.SyncPolicy.Automated.Prune
}

// ApplicationList is a list of Applications.
// +kubebuilder:object:root=true
type ApplicationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Application `json:"items"`
}

// ApplicationSpec is the desired state.
type ApplicationSpec struct {
	Source               *ApplicationSource          `json:"source,omitempty"`
	Sources              []ApplicationSource         `json:"sources,omitempty"`
	Destination          ApplicationDestination      `json:"destination"`
	Project              string                      `json:"project"`
	SyncPolicy           *SyncPolicy                 `json:"syncPolicy,omitempty"`
	IgnoreDifferences    []ResourceIgnoreDifferences `json:"ignoreDifferences,omitempty"`
	RevisionHistoryLimit *int64                      `json:"revisionHistoryLimit,omitempty"`
	// Info is free-form information shown with the app (Argo CD's field).
	Info []Info `json:"info,omitempty"`
	// SourceHydrator is Argo CD's (v3) hydrator config; kept, not used.
	SourceHydrator *runtime.RawExtension `json:"sourceHydrator,omitempty"`
}

// Info is a name/value pair shown with an app.
type Info struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ApplicationSource is where manifests come from.
type ApplicationSource struct {
	RepoURL        string                      `json:"repoURL"`
	Path           string                      `json:"path,omitempty"`
	TargetRevision string                      `json:"targetRevision,omitempty"`
	Chart          string                      `json:"chart,omitempty"`
	Helm           *ApplicationSourceHelm      `json:"helm,omitempty"`
	Kustomize      *ApplicationSourceKustomize `json:"kustomize,omitempty"`
	Directory      *ApplicationSourceDirectory `json:"directory,omitempty"`
	// Plugin is Argo CD's config management plugin; mlcd does not run
	// plugins (the app gets a ComparisonError) but keeps the field.
	Plugin *runtime.RawExtension `json:"plugin,omitempty"`
	// Ref names this source for $ref value files of multi-source apps.
	Ref string `json:"ref,omitempty"`
	// Name of the source (Argo CD ≥ 2.14).
	Name string `json:"name,omitempty"`
}

// ApplicationSourceHelm holds Helm options.
type ApplicationSourceHelm struct {
	ValueFiles              []string              `json:"valueFiles,omitempty"`
	IgnoreMissingValueFiles bool                  `json:"ignoreMissingValueFiles,omitempty"`
	Parameters              []HelmParameter       `json:"parameters,omitempty"`
	Values                  string                `json:"values,omitempty"`
	ValuesObject            *runtime.RawExtension `json:"valuesObject,omitempty"`
	ReleaseName             string                `json:"releaseName,omitempty"`
	FileParameters          []HelmFileParameter   `json:"fileParameters,omitempty"`
	Version                 string                `json:"version,omitempty"`
	PassCredentials         bool                  `json:"passCredentials,omitempty"`
	SkipCrds                bool                  `json:"skipCrds,omitempty"`
	SkipTests               bool                  `json:"skipTests,omitempty"`
	SkipSchemaValidation    bool                  `json:"skipSchemaValidation,omitempty"`
	Namespace               string                `json:"namespace,omitempty"`
	KubeVersion             string                `json:"kubeVersion,omitempty"`
	APIVersions             []string              `json:"apiVersions,omitempty"`
}

// HelmFileParameter sets a value from a file's content.
type HelmFileParameter struct {
	Name string `json:"name,omitempty"`
	Path string `json:"path,omitempty"`
}

// HelmParameter overrides one value like `helm --set` (`--set-string`
// with ForceString).
type HelmParameter struct {
	Name        string `json:"name,omitempty"`
	Value       string `json:"value,omitempty"`
	ForceString bool   `json:"forceString,omitempty"`
}

// ApplicationSourceKustomize holds Kustomize options.
type ApplicationSourceKustomize struct {
	NamePrefix   string            `json:"namePrefix,omitempty"`
	NameSuffix   string            `json:"nameSuffix,omitempty"`
	Images       []string          `json:"images,omitempty"`
	CommonLabels map[string]string `json:"commonLabels,omitempty"`
	Namespace    string            `json:"namespace,omitempty"`

	Version                   string                 `json:"version,omitempty"`
	CommonAnnotations         map[string]string      `json:"commonAnnotations,omitempty"`
	CommonAnnotationsEnvsubst bool                   `json:"commonAnnotationsEnvsubst,omitempty"`
	ForceCommonLabels         bool                   `json:"forceCommonLabels,omitempty"`
	ForceCommonAnnotations    bool                   `json:"forceCommonAnnotations,omitempty"`
	Replicas                  []KustomizeReplica     `json:"replicas,omitempty"`
	Patches                   []runtime.RawExtension `json:"patches,omitempty"`
	Components                []string               `json:"components,omitempty"`
	IgnoreMissingComponents   bool                   `json:"ignoreMissingComponents,omitempty"`
	LabelWithoutSelector      bool                   `json:"labelWithoutSelector,omitempty"`
	LabelIncludeTemplates     bool                   `json:"labelIncludeTemplates,omitempty"`
	KubeVersion               string                 `json:"kubeVersion,omitempty"`
	APIVersions               []string               `json:"apiVersions,omitempty"`
}

// KustomizeReplica overrides a workload's replicas.
type KustomizeReplica struct {
	Name  string             `json:"name"`
	Count intstr.IntOrString `json:"count"`
}

// ApplicationSourceDirectory holds options for plain YAML directories.
type ApplicationSourceDirectory struct {
	Recurse bool   `json:"recurse,omitempty"`
	Include string `json:"include,omitempty"`
	Exclude string `json:"exclude,omitempty"`
	// Jsonnet is Argo CD's jsonnet config; kept, not used.
	Jsonnet *runtime.RawExtension `json:"jsonnet,omitempty"`
}

// ApplicationDestination is the target cluster and namespace.
type ApplicationDestination struct {
	Server    string `json:"server,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// SyncPolicy controls automated sync.
type SyncPolicy struct {
	Automated                *SyncPolicyAutomated      `json:"automated,omitempty"`
	SyncOptions              []string                  `json:"syncOptions,omitempty"`
	Retry                    *RetryStrategy            `json:"retry,omitempty"`
	ManagedNamespaceMetadata *ManagedNamespaceMetadata `json:"managedNamespaceMetadata,omitempty"`
}

// ManagedNamespaceMetadata labels and annotates a namespace that
// CreateNamespace=true creates.
type ManagedNamespaceMetadata struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// SyncPolicyAutomated enables automated sync.
type SyncPolicyAutomated struct {
	Prune      bool `json:"prune,omitempty"`
	SelfHeal   bool `json:"selfHeal,omitempty"`
	AllowEmpty bool `json:"allowEmpty,omitempty"`
	// Enabled, when false, turns automation off (Argo CD ≥ 3.0).
	Enabled *bool `json:"enabled,omitempty"`
}

// RetryStrategy retries failed syncs with backoff.
type RetryStrategy struct {
	Limit   int64    `json:"limit,omitempty"`
	Backoff *Backoff `json:"backoff,omitempty"`
	Refresh bool     `json:"refresh,omitempty"`
}

// Backoff is the retry backoff: Duration × Factor^n, capped at MaxDuration.
type Backoff struct {
	Duration    string `json:"duration,omitempty"`
	Factor      *int64 `json:"factor,omitempty"`
	MaxDuration string `json:"maxDuration,omitempty"`
}

// ResourceIgnoreDifferences ignores fields when comparing.
type ResourceIgnoreDifferences struct {
	Group                 string   `json:"group,omitempty"`
	Kind                  string   `json:"kind"`
	Name                  string   `json:"name,omitempty"`
	Namespace             string   `json:"namespace,omitempty"`
	JSONPointers          []string `json:"jsonPointers,omitempty"`
	JQPathExpressions     []string `json:"jqPathExpressions,omitempty"`
	ManagedFieldsManagers []string `json:"managedFieldsManagers,omitempty"`
}

// Sync statuses.
const (
	SyncStatusSynced    = "Synced"
	SyncStatusOutOfSync = "OutOfSync"
	SyncStatusUnknown   = "Unknown"
)

// Health statuses, as Argo CD names them.
const (
	HealthHealthy     = "Healthy"
	HealthProgressing = "Progressing"
	HealthDegraded    = "Degraded"
	HealthSuspended   = "Suspended"
	HealthMissing     = "Missing"
	HealthUnknown     = "Unknown"
)

// Condition types.
const (
	ConditionComparisonError  = "ComparisonError"
	ConditionSyncError        = "SyncError"
	ConditionInvalidSpecError = "InvalidSpecError"
	ConditionOrphaned         = "OrphanedResourceWarning"
	// ConditionDeletionApproval: stale objects wait for a person's consent
	// before they are pruned (AnnotationDeletionApproved).
	ConditionDeletionApproval = "DeletionApprovalRequired"
)

// AnnotationDeletionApproved on an Application is the consent (any value,
// Argo CD writes a timestamp) to prune the objects that need it
// (Prune=confirm, Delete=confirm, Crossplane managed resources with
// deletionPolicy Delete). A prune that used it removes it.
const AnnotationDeletionApproved = "argocd.argoproj.io/deletion-approved"

// ApplicationStatus is the observed state.
type ApplicationStatus struct {
	Resources      []ResourceStatus       `json:"resources,omitempty"`
	Sync           SyncStatus             `json:"sync,omitempty"`
	Health         HealthStatus           `json:"health,omitempty"`
	History        []RevisionHistory      `json:"history,omitempty"`
	Conditions     []ApplicationCondition `json:"conditions,omitempty"`
	ReconciledAt   *metav1.Time           `json:"reconciledAt,omitempty"`
	ObservedAt     *metav1.Time           `json:"observedAt,omitempty"`
	OperationState *OperationState        `json:"operationState,omitempty"`
	SourceType     string                 `json:"sourceType,omitempty"`
}

// ResourceStatus is one managed object; the list is the app's inventory,
// the only objects mlcd ever prunes.
type ResourceStatus struct {
	Group     string        `json:"group,omitempty"`
	Version   string        `json:"version,omitempty"`
	Kind      string        `json:"kind,omitempty"`
	Namespace string        `json:"namespace,omitempty"`
	Name      string        `json:"name,omitempty"`
	Status    string        `json:"status,omitempty"`
	Health    *HealthStatus `json:"health,omitempty"`
}

// SyncStatus says whether live state equals Git at Revision.
type SyncStatus struct {
	Status   string `json:"status"`
	Revision string `json:"revision,omitempty"`
	// Revisions are a multi-source app's revisions, one per source (its
	// Revision joins them with commas).
	Revisions  []string   `json:"revisions,omitempty"`
	ComparedTo ComparedTo `json:"comparedTo,omitempty"`
}

// ComparedTo is what the status was computed against.
type ComparedTo struct {
	Source      ApplicationSource      `json:"source,omitempty"`
	Destination ApplicationDestination `json:"destination,omitempty"`
}

// HealthStatus is a health and why.
type HealthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// RevisionHistory is one successful sync.
type RevisionHistory struct {
	ID              int64             `json:"id"`
	Revision        string            `json:"revision,omitempty"`
	DeployedAt      metav1.Time       `json:"deployedAt"`
	DeployStartedAt *metav1.Time      `json:"deployStartedAt,omitempty"`
	Source          ApplicationSource `json:"source,omitempty"`
	// Revisions and Sources of a multi-source app.
	Revisions []string            `json:"revisions,omitempty"`
	Sources   []ApplicationSource `json:"sources,omitempty"`
}

// ApplicationCondition reports an error or warning.
type ApplicationCondition struct {
	Type               string       `json:"type"`
	Message            string       `json:"message"`
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// OperationState is the last sync operation.
type OperationState struct {
	Phase      string               `json:"phase"`
	Message    string               `json:"message,omitempty"`
	SyncResult *SyncOperationResult `json:"syncResult,omitempty"`
	StartedAt  metav1.Time          `json:"startedAt"`
	FinishedAt *metav1.Time         `json:"finishedAt,omitempty"`
	RetryCount int64                `json:"retryCount,omitempty"`
	// Operation is what was run (a requested sync, or an automated one).
	Operation *Operation `json:"operation,omitempty"`
}

// Operation phases.
const (
	PhaseRunning   = "Running"
	PhaseFailed    = "Failed"
	PhaseError     = "Error"
	PhaseSucceeded = "Succeeded"
)

// SyncOperationResult lists what a sync did to each object.
type SyncOperationResult struct {
	Resources []ResourceResult `json:"resources,omitempty"`
	Revision  string           `json:"revision"`
}

// ResourceResult is one object's outcome: created, configured, unchanged,
// pruned, skipped.
type ResourceResult struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status,omitempty"`
	Message   string `json:"message,omitempty"`
	// HookType, HookPhase (Running, Succeeded, Failed) and SyncPhase
	// (PreSync, Sync, PostSync, SyncFail) as Argo CD records them.
	HookType  string `json:"hookType,omitempty"`
	HookPhase string `json:"hookPhase,omitempty"`
	SyncPhase string `json:"syncPhase,omitempty"`
}

// maxHealthyVersions bounds the healthy-versions record.
const maxHealthyVersions = 20

// ParseHealthyVersions reads a healthy-versions record (the annotation's
// value, or the app's key in HealthyVersionsConfigMap): versions, oldest
// first.
func ParseHealthyVersions(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// FormatHealthyVersions writes a record: the newest 20, comma-separated.
func FormatHealthyVersions(list []string) string {
	if len(list) > maxHealthyVersions {
		list = list[len(list)-maxHealthyVersions:]
	}
	return strings.Join(list, ",")
}

// HealthyVersionsKey is the app's key in HealthyVersionsConfigMap:
// "<namespace>.<name>" (namespaces hold no dots).
func HealthyVersionsKey(namespace, name string) string { return namespace + "." + name }

// HealthyVersions reads the HealthyVersionsAnnotation copy of the record.
func (a *Application) HealthyVersions() []string {
	return ParseHealthyVersions(a.Annotations[HealthyVersionsAnnotation])
}

// SetHealthyVersions writes the annotation copy (none: removed).
func (a *Application) SetHealthyVersions(list []string) {
	if a.Annotations == nil {
		a.Annotations = map[string]string{}
	}
	if v := FormatHealthyVersions(list); v != "" {
		a.Annotations[HealthyVersionsAnnotation] = v
	} else {
		delete(a.Annotations, HealthyVersionsAnnotation)
	}
}

// DeployedRevision is the commit that last changed what the app applies:
// its newest history entry (one is written only when something was
// applied), else the last sync's revision, else the compared one. Lineage
// names it; status.sync.revision moves with every commit to the
// repository.
func (a *Application) DeployedRevision() string {
	if n := len(a.Status.History); n > 0 && a.Status.History[n-1].Revision != "" {
		return a.Status.History[n-1].Revision
	}
	if op := a.Status.OperationState; op != nil && op.SyncResult != nil && op.SyncResult.Revision != "" {
		return op.SyncResult.Revision
	}
	return a.Status.Sync.Revision
}

// SourceOf returns the app's single source (Sources[0] for multi-source
// apps, which mlcd does not support beyond the first).
func (a *Application) SourceOf() *ApplicationSource {
	if a.Spec.Source != nil {
		return a.Spec.Source
	}
	if len(a.Spec.Sources) > 0 {
		return &a.Spec.Sources[0]
	}
	return nil
}

// HasSyncOption reports whether syncOptions contains opt (e.g.
// "CreateNamespace=true").
func (a *Application) HasSyncOption(opt string) bool {
	if a.Spec.SyncPolicy == nil {
		return false
	}
	for _, o := range a.Spec.SyncPolicy.SyncOptions {
		if o == opt {
			return true
		}
	}
	return false
}
