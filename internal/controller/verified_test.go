package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/manifest"
)

func object(kind, name string, generation int64, labels map[string]string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion("apps/v1")
	o.SetKind(kind)
	o.SetNamespace("ns")
	o.SetName(name)
	o.SetLabels(labels)
	if generation > 0 {
		o.SetGeneration(generation)
	}
	return o
}

// The fingerprint taken from a create's reply equals the one the next
// reconcile reads from the cache, so that reconcile skips the dry run; any
// object not created by the sync leaves nothing to remember.
func TestCreatedFingerprint(t *testing.T) {
	desired := []*unstructured.Unstructured{
		object("Deployment", "a", 0, map[string]string{"app": "a"}),
		object("Deployment", "b", 0, map[string]string{"app": "b"}),
	}
	reply := func(o *unstructured.Unstructured) *unstructured.Unstructured {
		l := o.DeepCopy()
		l.SetGeneration(1)
		l.SetResourceVersion("41")
		return l
	}
	results := []apply.Result{
		{Object: desired[0], Action: "created", Live: reply(desired[0])},
		{Object: desired[1], Action: "created", Live: reply(desired[1])},
	}
	fp, ok := createdFingerprint(desired, results)
	if !ok || len(fp) != 2 {
		t.Fatalf("createdFingerprint = %v, %v", fp, ok)
	}
	// Later, the cache holds the object with a new resourceVersion (status
	// changed) and labels another controller added: same fingerprint.
	cached := reply(desired[0])
	cached.SetResourceVersion("57")
	cached.SetLabels(map[string]string{"app": "a", "pod-template-hash": "x"})
	if got := fingerprintOf(cached, desired[0]); got != fp[manifest.Key(desired[0])] {
		t.Errorf("cached fingerprint %q differs from the created one %v", got, fp)
	}
	// A spec edit (generation) or a changed label of ours must differ.
	edited := reply(desired[0])
	edited.SetGeneration(2)
	if fingerprintOf(edited, desired[0]) == fp[manifest.Key(desired[0])] {
		t.Error("a new generation kept the fingerprint")
	}
	relabeled := reply(desired[0])
	relabeled.SetLabels(map[string]string{"app": "other"})
	if fingerprintOf(relabeled, desired[0]) == fp[manifest.Key(desired[0])] {
		t.Error("a changed label kept the fingerprint")
	}

	results[1] = apply.Result{Object: desired[1], Action: "configured"}
	if fp, ok := createdFingerprint(desired, results); ok {
		t.Errorf("one object configured, not created: got %v", fp)
	}
}
