// Package manifest parses YAML into Kubernetes objects and names them: object
// keys, the tracking label and annotation mlcd stamps on what it applies, and
// the per-resource sync options users set. It does no I/O.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"encoding/json"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const (
	// InstanceLabel tracks which app an object belongs to, as Argo CD does.
	InstanceLabel = "app.kubernetes.io/instance"
	// AppAnnotation names the owning Application as namespace/name.
	AppAnnotation = "mlcd.io/application"
	// SyncOptionsAnnotation holds per-resource sync options (Prune=false).
	SyncOptionsAnnotation = "argocd.argoproj.io/sync-options"
)

// Parse reads a multi-document YAML or JSON stream. Empty documents and
// List kinds are flattened; a document without apiVersion or kind is an
// error naming its position in source.
func Parse(source string, data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for i := 1; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: document %d: invalid YAML: %s", source, i, OneLine(err))
		}
		// apimachinery's json keeps integers int64, as objects from the
		// API server have them.
		var obj map[string]any
		if len(bytes.TrimSpace(raw)) > 0 && string(bytes.TrimSpace(raw)) != "null" {
			if err := utiljson.Unmarshal(raw, &obj); err != nil {
				return nil, fmt.Errorf("%s: document %d: not an object: %s", source, i, OneLine(err))
			}
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.IsList() && strings.HasSuffix(u.GetKind(), "List") {
			list, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
			}
			for j := range list.Items {
				if list.Items[j].GetAPIVersion() == "" || list.Items[j].GetKind() == "" {
					return nil, fmt.Errorf("%s: document %d: item %d: missing apiVersion or kind", source, i, j)
				}
				out = append(out, &list.Items[j])
			}
			continue
		}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("%s: document %d: missing apiVersion or kind", source, i)
		}
		out = append(out, u)
	}
}

// Key identifies an object: group/kind/namespace/name.
func Key(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	return gvk.Group + "/" + gvk.Kind + "/" + u.GetNamespace() + "/" + u.GetName()
}

// HasSyncOption reports whether the object's sync-options annotation
// holds opt (e.g. "Prune=false").
func HasSyncOption(u *unstructured.Unstructured, opt string) bool {
	for _, o := range strings.Split(u.GetAnnotations()[SyncOptionsAnnotation], ",") {
		if strings.TrimSpace(o) == opt {
			return true
		}
	}
	return false
}

// OneLine is err's message on one line, for conditions and events.
func OneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
