// Package v1alpha1 holds the Go types and CRDs of the argoproj.io/v1alpha1
// kinds mlcd reads — Application and AppProject — with Argo CD's field names
// and meaning, so existing manifests apply unchanged. It never talks to a
// cluster; CRDs() returns the definitions mlcd installs at start.
//
// mlcd settings that Argo CD has no field for live in mlcd.io/* annotations
// or in mlcd.io kinds, never in invented Application fields.
// +kubebuilder:object:generate=true
package v1alpha1
