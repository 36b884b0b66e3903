package v1alpha1

import (
	"encoding/json"

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

// deepCopyJSON copies through JSON: the types are plain data, and one
// generic copy keeps them free of generated code.
func deepCopyJSON[T any](in *T) *T {
	if in == nil {
		return nil
	}
	data, err := json.Marshal(in)
	if err != nil {
		panic(err)
	}
	out := new(T)
	if err := json.Unmarshal(data, out); err != nil {
		panic(err)
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (a *Application) DeepCopyObject() runtime.Object { return deepCopyJSON(a) }

// DeepCopy copies the Application.
func (a *Application) DeepCopy() *Application { return deepCopyJSON(a) }

// DeepCopyObject implements runtime.Object.
func (l *ApplicationList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }

// DeepCopyObject implements runtime.Object.
func (p *AppProject) DeepCopyObject() runtime.Object { return deepCopyJSON(p) }

// DeepCopyObject implements runtime.Object.
func (l *AppProjectList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }

// DeepCopyObject implements runtime.Object.
func (p *ModelPolicy) DeepCopyObject() runtime.Object { return deepCopyJSON(p) }

// DeepCopyObject implements runtime.Object.
func (l *ModelPolicyList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }
