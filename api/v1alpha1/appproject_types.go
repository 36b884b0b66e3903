package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// AppProject is Argo CD's AppProject: which repos apps may use and where
// they may deploy.
// +kubebuilder:object:root=true
type AppProject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AppProjectSpec `json:"spec"`
}

// AppProjectList is a list of AppProjects.
// +kubebuilder:object:root=true
type AppProjectList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AppProject `json:"items"`
}

// AppProjectSpec restricts the project's apps.
type AppProjectSpec struct {
	Description                string                   `json:"description,omitempty"`
	SourceRepos                []string                 `json:"sourceRepos,omitempty"`
	Destinations               []ApplicationDestination `json:"destinations,omitempty"`
	ClusterResourceWhitelist   []metav1.GroupKind       `json:"clusterResourceWhitelist,omitempty"`
	ClusterResourceBlacklist   []metav1.GroupKind       `json:"clusterResourceBlacklist,omitempty"`
	NamespaceResourceBlacklist []metav1.GroupKind       `json:"namespaceResourceBlacklist,omitempty"`
	NamespaceResourceWhitelist []metav1.GroupKind       `json:"namespaceResourceWhitelist,omitempty"`
	SignatureKeys              []SignatureKey           `json:"signatureKeys,omitempty"`
	SourceNamespaces           []string                 `json:"sourceNamespaces,omitempty"`
	// Argo CD's fields mlcd keeps but does not enforce yet.
	Roles                           []runtime.RawExtension `json:"roles,omitempty"`
	SyncWindows                     []runtime.RawExtension `json:"syncWindows,omitempty"`
	OrphanedResources               *runtime.RawExtension  `json:"orphanedResources,omitempty"`
	PermitOnlyProjectScopedClusters bool                   `json:"permitOnlyProjectScopedClusters,omitempty"`
	DestinationServiceAccounts      []runtime.RawExtension `json:"destinationServiceAccounts,omitempty"`
}

// SignatureKey names a GnuPG key allowed to sign commits.
type SignatureKey struct {
	KeyID string `json:"keyID"`
}

var anyGroupKind = metav1.GroupKind{Group: "*", Kind: "*"}
