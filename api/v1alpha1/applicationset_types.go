package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ApplicationSet is Argo CD's ApplicationSet: generators produce
// parameter sets, each rendered through the template into one
// Application that the set owns.
// +kubebuilder:object:root=true
type ApplicationSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ApplicationSetSpec   `json:"spec"`
	Status            ApplicationSetStatus `json:"status,omitempty"`
}

// ApplicationSetList is a list of ApplicationSets.
// +kubebuilder:object:root=true
type ApplicationSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApplicationSet `json:"items"`
}

// ApplicationSetSpec is Argo CD's schema (the parts mlcd does not run yet,
// such as strategy, are kept as given).
type ApplicationSetSpec struct {
	GoTemplate        bool                      `json:"goTemplate,omitempty"`
	GoTemplateOptions []string                  `json:"goTemplateOptions,omitempty"`
	Generators        []ApplicationSetGenerator `json:"generators"`
	Template          ApplicationSetTemplate    `json:"template"`
	SyncPolicy        *ApplicationSetSyncPolicy `json:"syncPolicy,omitempty"`
	Strategy          *ApplicationSetStrategy   `json:"strategy,omitempty"`
	PreservedFields   *runtime.RawExtension     `json:"preservedFields,omitempty"`
	IgnoreDifferences []runtime.RawExtension    `json:"ignoreApplicationDifferences,omitempty"`
	TemplatePatch     *string                   `json:"templatePatch,omitempty"`
}

// ApplicationSetStrategy is how generated apps are updated: AllAtOnce
// (default) or RollingSync (steps of apps selected by label; a step syncs
// only once the apps of the steps before it are Synced and Healthy).
type ApplicationSetStrategy struct {
	Type          string                         `json:"type,omitempty"`
	RollingSync   *ApplicationSetRolloutStrategy `json:"rollingSync,omitempty"`
	DeletionOrder string                         `json:"deletionOrder,omitempty"`
}

// ApplicationSetRolloutStrategy lists the steps of a RollingSync.
type ApplicationSetRolloutStrategy struct {
	Steps []ApplicationSetRolloutStep `json:"steps,omitempty"`
}

// ApplicationSetRolloutStep selects the apps of one step by label.
type ApplicationSetRolloutStep struct {
	MatchExpressions []ApplicationMatchExpression `json:"matchExpressions,omitempty"`
	MaxUpdate        *intstr.IntOrString          `json:"maxUpdate,omitempty"`
}

// ApplicationMatchExpression is a label requirement (In, NotIn, Exists,
// DoesNotExist).
type ApplicationMatchExpression struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// ApplicationSetTemplate is an Application with its metadata's name,
// labels and annotations templated.
type ApplicationSetTemplate struct {
	ApplicationSetTemplateMeta `json:"metadata"`
	Spec                       ApplicationSpec `json:"spec"`
}

// ApplicationSetTemplateMeta is the templated metadata.
type ApplicationSetTemplateMeta struct {
	Name        string            `json:"name,omitempty"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Finalizers  []string          `json:"finalizers,omitempty"`
}

// ApplicationSetGenerator is one generator; exactly one field is set.
type ApplicationSetGenerator struct {
	List     *ListGenerator        `json:"list,omitempty"`
	Clusters *ClusterGenerator     `json:"clusters,omitempty"`
	Git      *GitGenerator         `json:"git,omitempty"`
	Matrix   *NestedGenerator      `json:"matrix,omitempty"`
	Merge    *NestedGenerator      `json:"merge,omitempty"`
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Other generators of Argo CD's (scmProvider, pullRequest, plugin,
	// clusterDecisionResource) are kept; mlcd reports them unsupported.
	SCMProvider             *runtime.RawExtension `json:"scmProvider,omitempty"`
	PullRequest             *runtime.RawExtension `json:"pullRequest,omitempty"`
	Plugin                  *runtime.RawExtension `json:"plugin,omitempty"`
	ClusterDecisionResource *runtime.RawExtension `json:"clusterDecisionResource,omitempty"`
}

// ListGenerator yields its elements.
type ListGenerator struct {
	Elements     []runtime.RawExtension  `json:"elements,omitempty"`
	ElementsYaml string                  `json:"elementsYaml,omitempty"`
	Template     *ApplicationSetTemplate `json:"template,omitempty"`
}

// ClusterGenerator yields the clusters mlcd knows (the in-cluster one and
// cluster Secrets), filtered by selector.
type ClusterGenerator struct {
	Selector metav1.LabelSelector    `json:"selector,omitempty"`
	Values   map[string]string       `json:"values,omitempty"`
	Template *ApplicationSetTemplate `json:"template,omitempty"`
}

// GitGenerator yields directories or the contents of files of a revision.
type GitGenerator struct {
	RepoURL         string                      `json:"repoURL"`
	Revision        string                      `json:"revision,omitempty"`
	Directories     []GitDirectoryGeneratorItem `json:"directories,omitempty"`
	Files           []GitFileGeneratorItem      `json:"files,omitempty"`
	PathParamPrefix string                      `json:"pathParamPrefix,omitempty"`
	Values          map[string]string           `json:"values,omitempty"`
	Template        *ApplicationSetTemplate     `json:"template,omitempty"`
}

// GitDirectoryGeneratorItem is a directory glob; Exclude drops matches.
type GitDirectoryGeneratorItem struct {
	Path    string `json:"path"`
	Exclude bool   `json:"exclude,omitempty"`
}

// GitFileGeneratorItem is a file glob whose JSON/YAML files become
// parameters.
type GitFileGeneratorItem struct {
	Path    string `json:"path"`
	Exclude bool   `json:"exclude,omitempty"`
}

// NestedGenerator combines two (matrix) or more (merge) generators.
type NestedGenerator struct {
	Generators []ApplicationSetGenerator `json:"generators"`
	MergeKeys  []string                  `json:"mergeKeys,omitempty"`
	Template   *ApplicationSetTemplate   `json:"template,omitempty"`
}

// ApplicationSetSyncPolicy says what the set may do to its apps.
type ApplicationSetSyncPolicy struct {
	// ApplicationsSync: create-only, create-update, create-delete, sync
	// (default: all).
	ApplicationsSync            string `json:"applicationsSync,omitempty"`
	PreserveResourcesOnDeletion bool   `json:"preserveResourcesOnDeletion,omitempty"`
}

// ApplicationSetStatus is the set's observed state.
type ApplicationSetStatus struct {
	Conditions []ApplicationSetCondition `json:"conditions,omitempty"`
	// Resources are the generated Applications.
	Resources []ApplicationSetResource `json:"resources,omitempty"`
}

// ApplicationSetCondition as Argo CD: type, status, reason, message.
type ApplicationSetCondition struct {
	Type               string       `json:"type"`
	Status             string       `json:"status"`
	Reason             string       `json:"reason,omitempty"`
	Message            string       `json:"message,omitempty"`
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// ApplicationSetResource is one generated Application.
type ApplicationSetResource struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Status    string `json:"status,omitempty"`
	Health    string `json:"health,omitempty"`
}

// ApplicationSet condition types and reasons, as Argo CD names them.
const (
	AppSetConditionErrorOccurred       = "ErrorOccurred"
	AppSetConditionParametersGenerated = "ParametersGenerated"
	AppSetConditionResourcesUpToDate   = "ResourcesUpToDate"
)

// Labels and annotations of generated apps.
const (
	// AppSetLabel names the set that generated an Application (Argo CD's).
	AppSetLabel = "argocd.argoproj.io/application-set-name"
	// AllowMassDeleteAnnotation lets a set delete more than half of its
	// apps in one generation.
	AllowMassDeleteAnnotation = "mlcd.io/allow-mass-delete"
)
