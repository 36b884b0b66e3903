package inventory

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/manifest"
)

func obj(kind, name string, ann map[string]string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion("v1")
	if kind == "Deployment" {
		o.SetAPIVersion("apps/v1")
	}
	o.SetKind(kind)
	o.SetNamespace("ns")
	o.SetName(name)
	if ann != nil {
		o.SetAnnotations(ann)
	}
	return o
}

func entry(kind, name string) v1alpha1.ResourceStatus {
	o := obj(kind, name, nil)
	gvk := o.GroupVersionKind()
	return v1alpha1.ResourceStatus{Group: gvk.Group, Version: gvk.Version, Kind: kind, Namespace: "ns", Name: name}
}

func names(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

func TestStale(t *testing.T) {
	prev := []v1alpha1.ResourceStatus{entry("Deployment", "a"), entry("Service", "a"), entry("ConfigMap", "old")}
	cases := []struct {
		name    string
		desired []*unstructured.Unstructured
		want    []string
	}{
		{"nothing changed", []*unstructured.Unstructured{obj("Deployment", "a", nil), obj("Service", "a", nil), obj("ConfigMap", "old", nil)}, nil},
		{"one removed", []*unstructured.Unstructured{obj("Deployment", "a", nil), obj("Service", "a", nil)}, []string{"ConfigMap/old"}},
		{"same name, other kind", []*unstructured.Unstructured{obj("Deployment", "a", nil), obj("ConfigMap", "a", nil)}, []string{"Service/a", "ConfigMap/old"}},
		{"all removed", nil, []string{"Deployment/a", "Service/a", "ConfigMap/old"}},
	}
	for _, c := range cases {
		if got := names(Stale(prev, c.desired)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPrunable(t *testing.T) {
	owner := "argocd/app"
	mine := map[string]string{manifest.AppAnnotation: owner}
	stale := []*unstructured.Unstructured{
		obj("ConfigMap", "mine", nil), obj("ConfigMap", "gone", nil), obj("ConfigMap", "keep", nil),
		obj("ConfigMap", "other", nil), obj("ConfigMap", "last", nil), obj("ConfigMap", "unlabelled", nil),
	}
	live := map[string]*unstructured.Unstructured{}
	add := func(o *unstructured.Unstructured) { live[manifest.Key(o)] = o }
	add(obj("ConfigMap", "mine", mine))
	add(obj("ConfigMap", "keep", map[string]string{manifest.AppAnnotation: owner, manifest.SyncOptionsAnnotation: "Prune=false"}))
	add(obj("ConfigMap", "other", map[string]string{manifest.AppAnnotation: "argocd/someone-else"}))
	add(obj("ConfigMap", "last", map[string]string{manifest.AppAnnotation: owner, manifest.SyncOptionsAnnotation: "Validate=false, PruneLast=true"}))
	add(obj("ConfigMap", "unlabelled", map[string]string{}))

	p := Prunable(owner, stale, live, false, false)
	if got, want := names(p.Prune), []string{"ConfigMap/mine"}; !reflect.DeepEqual(got, want) {
		t.Errorf("prune: got %v, want %v", got, want)
	}
	if got, want := names(p.PruneLast), []string{"ConfigMap/last"}; !reflect.DeepEqual(got, want) {
		t.Errorf("prune last: got %v, want %v", got, want)
	}
	if got, want := names(p.Gone), []string{"ConfigMap/gone"}; !reflect.DeepEqual(got, want) {
		t.Errorf("gone: got %v, want %v", got, want)
	}
	var skipped []string
	for _, s := range p.Skipped {
		skipped = append(skipped, s.Object.GetName()+": "+s.Reason)
	}
	if want := []string{"keep: Prune=false", "other: not managed by this application", "unlabelled: not managed by this application"}; !reflect.DeepEqual(skipped, want) {
		t.Errorf("skipped: got %v, want %v", skipped, want)
	}

	// PruneLast for the whole app moves every prunable object last.
	p = Prunable(owner, stale, live, true, false)
	if got, want := names(p.PruneLast), []string{"ConfigMap/mine", "ConfigMap/last"}; len(p.Prune) != 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("app PruneLast: prune %v, last %v, want last %v", names(p.Prune), got, want)
	}
}

func TestOwned(t *testing.T) {
	owner := "argocd/app"
	inv := []*unstructured.Unstructured{obj("Deployment", "a", nil), obj("Service", "a", nil), obj("ConfigMap", "gone", nil)}
	live := map[string]*unstructured.Unstructured{}
	for _, o := range []*unstructured.Unstructured{obj("Deployment", "a", map[string]string{manifest.AppAnnotation: owner}), obj("Service", "a", map[string]string{manifest.AppAnnotation: "other/app"})} {
		live[manifest.Key(o)] = o
	}
	if got, want := names(Owned(owner, inv, live)), []string{"Deployment/a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestAppendHistory(t *testing.T) {
	var h []v1alpha1.RevisionHistory
	for i, rev := range []string{"a", "b", "c", "d"} {
		h = AppendHistory(h, v1alpha1.RevisionHistory{Revision: rev, DeployedAt: metav1.Now()}, ptr(int64(3)))
		if h[len(h)-1].ID != int64(i) {
			t.Fatalf("entry %d has ID %d", i, h[len(h)-1].ID)
		}
	}
	var revs []string
	for _, e := range h {
		revs = append(revs, e.Revision)
	}
	if want := []string{"b", "c", "d"}; !reflect.DeepEqual(revs, want) {
		t.Errorf("limit 3: got %v, want %v", revs, want)
	}
	h = nil
	for range 12 {
		h = AppendHistory(h, v1alpha1.RevisionHistory{Revision: "x"}, nil)
	}
	if len(h) != DefaultHistoryLimit || h[0].ID != 2 || h[9].ID != 11 {
		t.Errorf("default limit: %d entries, IDs %d..%d, want 10 entries 2..11", len(h), h[0].ID, h[len(h)-1].ID)
	}
}

func ptr[T any](v T) *T { return &v }
