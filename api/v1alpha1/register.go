package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is argoproj.io/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "argoproj.io", Version: "v1alpha1"}

// AddToScheme registers the kinds with a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Application{}, &ApplicationList{}, &AppProject{}, &AppProjectList{}, &ApplicationSet{}, &ApplicationSetList{},
		&AnalysisTemplate{}, &AnalysisTemplateList{}, &ClusterAnalysisTemplate{}, &ClusterAnalysisTemplateList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	s.AddKnownTypes(MLCDGroupVersion, &ModelPolicy{}, &ModelPolicyList{}, &ModelRollout{}, &ModelRolloutList{})
	metav1.AddToGroupVersion(s, MLCDGroupVersion)
	return nil
}
