package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	mlcddiff "github.com/mlcd-dev/mlcd/internal/diff"
)

// ObjectDiff is one object a sync would change.
type ObjectDiff struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Action is what a sync would do: created, configured, pruned, skipped.
	Action string `json:"action"`
	// Diff is a unified diff of the live object against the dry-run
	// result (Secret data masked).
	Diff string `json:"diff,omitempty"`
}

// DiffResult is the answer of …/diff.
type DiffResult struct {
	Items []ObjectDiff `json:"items"`
	// InSync is true when a sync would change nothing.
	InSync bool `json:"inSync"`
}

// diffApp answers GET /api/v1/applications/{name}/diff.
func (s *Server) diffApp(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	if s.o.Differ == nil {
		return nil, &apiError{http.StatusNotImplemented, "this server computes no diffs (it runs without the controller's engine)"}
	}
	app, err := s.app(r, who)
	if err != nil {
		return nil, err
	}
	results, err := s.o.Differ.Diff(r.Context(), app)
	if err != nil {
		// A desired state that cannot be computed is the app's problem,
		// not the server's: say it like the app's condition does.
		return nil, &apiError{http.StatusConflict, fmt.Sprintf("cannot compute the desired state of %s/%s: %s", app.Namespace, app.Name, err)}
	}
	out := DiffResult{Items: []ObjectDiff{}}
	for _, res := range results {
		o := res.Object
		gvk := o.GroupVersionKind()
		d := ObjectDiff{Group: gvk.Group, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName(), Action: string(res.Action)}
		d.Diff, err = unified(res.Before, res.After, o)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, d)
	}
	out.InSync = len(out.Items) == 0
	return out, nil
}

// unified is a unified diff of before → after as YAML, without managed
// fields or status, with Secret data masked.
func unified(before, after, desired *unstructured.Unstructured) (string, error) {
	if after == nil && before == nil {
		after = desired
	}
	a, err := clean(before)
	if err != nil {
		return "", err
	}
	b, err := clean(after)
	if err != nil {
		return "", err
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(a), B: difflib.SplitLines(b),
		FromFile: "live", ToFile: "desired", Context: 3,
	})
}

func clean(o *unstructured.Unstructured) (string, error) {
	if o == nil {
		return "", nil
	}
	c := o.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
	unstructured.RemoveNestedField(c.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(c.Object, "metadata", "generation")
	unstructured.RemoveNestedField(c.Object, "metadata", "uid")
	unstructured.RemoveNestedField(c.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(c.Object, "status")
	if ann := c.GetAnnotations(); ann != nil {
		delete(ann, "kubectl.kubernetes.io/last-applied-configuration")
		c.SetAnnotations(ann)
	}
	masker.Secret(c)
	data, err := yaml.Marshal(c.Object)
	if err != nil {
		return "", errors.New("render object as YAML: " + err.Error())
	}
	return string(data), nil
}

// masker hides Secret values in the API's diffs; its key lives as long
// as the server, so masks compare within it.
var masker = mlcddiff.NewMasker()
