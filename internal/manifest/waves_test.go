package manifest

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func obj(ann map[string]string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion("batch/v1")
	o.SetKind("Job")
	o.SetName("x")
	o.SetAnnotations(ann)
	return o
}

func TestHookTypesAndWaves(t *testing.T) {
	for _, c := range []struct {
		ann    map[string]string
		types  []string
		wave   int
		delete []string
	}{
		{nil, nil, 0, []string{BeforeHookCreation}},
		{map[string]string{SyncWaveAnnotation: "-2"}, nil, -2, []string{BeforeHookCreation}},
		{map[string]string{HookAnnotation: "PreSync", HookDeletePolicyAnnotation: "HookSucceeded"}, []string{PreSync}, 0, []string{HookSucceeded}},
		{map[string]string{HookAnnotation: "PreSync,PostSync"}, []string{PreSync, PostSync}, 0, []string{BeforeHookCreation}},
		{map[string]string{HelmHookAnnotation: "pre-install,pre-upgrade", HelmHookWeightAnnotation: "5", HelmHookDeletePolicy: "hook-succeeded,before-hook-creation"}, []string{PreSync}, 5, []string{HookSucceeded, BeforeHookCreation}},
		{map[string]string{HelmHookAnnotation: "post-upgrade"}, []string{PostSync}, 0, []string{BeforeHookCreation}},
		{map[string]string{HelmHookAnnotation: "pre-delete"}, []string{Skip}, 0, []string{BeforeHookCreation}},
		// Argo CD's annotation wins over Helm's.
		{map[string]string{HookAnnotation: "Sync", HelmHookAnnotation: "pre-install"}, []string{Sync}, 0, []string{BeforeHookCreation}},
	} {
		o := obj(c.ann)
		if got := HookTypes(o); !reflect.DeepEqual(got, c.types) {
			t.Errorf("%v: types %v, want %v", c.ann, got, c.types)
		}
		if got := Wave(o); got != c.wave {
			t.Errorf("%v: wave %d, want %d", c.ann, got, c.wave)
		}
		if got := HookDeletePolicies(o); !reflect.DeepEqual(got, c.delete) {
			t.Errorf("%v: delete policies %v, want %v", c.ann, got, c.delete)
		}
	}
	objs := []*unstructured.Unstructured{obj(map[string]string{SyncWaveAnnotation: "1"}), obj(nil), obj(map[string]string{SyncWaveAnnotation: "-1"}), obj(map[string]string{SyncWaveAnnotation: "1"})}
	if got := Waves(objs); !reflect.DeepEqual(got, []int{-1, 0, 1}) || len(InWave(objs, 1)) != 2 || !Phased(objs) || Phased([]*unstructured.Unstructured{obj(nil)}) {
		t.Errorf("waves %v", got)
	}
}
