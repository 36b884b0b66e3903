package diff

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestMasker(t *testing.T) {
	secret := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "s"},
			"data": map[string]any{"a": "aHVudGVyMg==", "b": "aHVudGVyMg==", "c": "b3RoZXI="}, "stringData": map[string]any{"p": "hunter2"}}}
	}
	m := NewMasker()
	s := secret()
	m.Secret(s)
	data, _, _ := unstructured.NestedStringMap(s.Object, "data")
	sd, _, _ := unstructured.NestedStringMap(s.Object, "stringData")
	if data["a"] != data["b"] || data["a"] == data["c"] || !strings.HasPrefix(data["a"], "++++++++ (") {
		t.Errorf("masks %v: want equal values masked equally, others differently", data)
	}
	if strings.Contains(data["a"]+sd["p"], "hunter2") || strings.Contains(data["a"], "aHVudGVyMg") {
		t.Errorf("a mask shows the value: %v %v", data, sd)
	}
	other := secret()
	NewMasker().Secret(other)
	if o, _, _ := unstructured.NestedStringMap(other.Object, "data"); o["a"] == data["a"] {
		t.Error("two maskers' keys give the same mask")
	}
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "data": map[string]any{"a": "plain"}}}
	m.Secret(cm)
	if v, _, _ := unstructured.NestedString(cm.Object, "data", "a"); v != "plain" {
		t.Errorf("a ConfigMap was masked: %q", v)
	}
}
