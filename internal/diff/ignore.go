// Package diff normalizes desired objects against live ones before they
// are compared or applied: fields an Application's ignoreDifferences names
// (JSON pointers, jq path expressions, fields owned by named field
// managers), Argo CD's system-level defaults, and the replicas of
// workloads that an autoscaler scales; and it masks Secret values in the
// diffs people read (Masker). It is pure: values in, values out.
package diff

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/itchyny/gojq"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// Rule is one compiled ignoreDifferences entry.
type Rule struct {
	Group, Kind, Name, Namespace string
	pointers                     [][]any
	queries                      []*gojq.Code
	managers                     []string
}

// SystemDefaults are ignored for every app, as Argo CD ignores them by
// default: CA bundles that a controller injects.
var SystemDefaults = []v1alpha1.ResourceIgnoreDifferences{
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration", JQPathExpressions: []string{".webhooks[]?.clientConfig.caBundle"}},
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration", JQPathExpressions: []string{".webhooks[]?.clientConfig.caBundle"}},
	{Group: "apiregistration.k8s.io", Kind: "APIService", JSONPointers: []string{"/spec/caBundle"}},
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition", JSONPointers: []string{"/spec/conversion/webhook/clientConfig/caBundle"}},
}

// systemRules are SystemDefaults compiled once (they are constant).
var systemRules = func() []Rule {
	r, err := Compile(SystemDefaults)
	if err != nil {
		panic(err)
	}
	return r
}()

// Rules are the system defaults plus the app's entries, compiled; the
// app's entries are compiled only when it has any.
func Rules(entries []v1alpha1.ResourceIgnoreDifferences) ([]Rule, error) {
	if len(entries) == 0 {
		return systemRules, nil
	}
	own, err := Compile(entries)
	if err != nil {
		return nil, err
	}
	return append(append([]Rule(nil), systemRules...), own...), nil
}

// Compile parses entries; the error names the bad pointer or expression.
func Compile(entries []v1alpha1.ResourceIgnoreDifferences) ([]Rule, error) {
	var out []Rule
	for i, e := range entries {
		r := Rule{Group: e.Group, Kind: e.Kind, Name: e.Name, Namespace: e.Namespace, managers: e.ManagedFieldsManagers}
		for _, p := range e.JSONPointers {
			path, err := parsePointer(p)
			if err != nil {
				return nil, fmt.Errorf("ignoreDifferences[%d]: jsonPointer %q: %w", i, p, err)
			}
			r.pointers = append(r.pointers, path)
		}
		for _, q := range e.JQPathExpressions {
			parsed, err := gojq.Parse("[path(" + q + ")]")
			if err != nil {
				return nil, fmt.Errorf("ignoreDifferences[%d]: jqPathExpression %q: %w", i, q, err)
			}
			code, err := gojq.Compile(parsed)
			if err != nil {
				return nil, fmt.Errorf("ignoreDifferences[%d]: jqPathExpression %q: %w", i, q, err)
			}
			r.queries = append(r.queries, code)
		}
		out = append(out, r)
	}
	return out, nil
}

func (r Rule) matches(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return (r.Group == "*" || r.Group == gvk.Group) &&
		(r.Kind == "*" || r.Kind == gvk.Kind) &&
		(r.Name == "" || r.Name == o.GetName()) &&
		(r.Namespace == "" || r.Namespace == o.GetNamespace())
}

// Respect sets every field of desired that a matching rule ignores to its
// live value, or removes it when live has none, so neither comparison nor
// apply touches it.
func Respect(rules []Rule, desired, live *unstructured.Unstructured) error {
	if live == nil {
		return nil
	}
	for _, r := range rules {
		if !r.matches(desired) {
			continue
		}
		paths := append([][]any(nil), r.pointers...)
		for _, q := range r.queries {
			for _, doc := range []map[string]any{live.Object, desired.Object} {
				found, err := jqPaths(q, doc)
				if err != nil {
					return fmt.Errorf("%s %s: ignoreDifferences: %w", desired.GetKind(), desired.GetName(), err)
				}
				paths = append(paths, found...)
			}
		}
		if len(r.managers) > 0 {
			paths = append(paths, managedPaths(live, r.managers)...)
		}
		for _, p := range paths {
			if v, ok := get(live.Object, p); ok {
				set(desired.Object, p, deepCopy(v))
			} else {
				del(desired.Object, p)
			}
		}
	}
	return nil
}

// jqPaths runs `[path(expr)]` on doc (as JSON values).
func jqPaths(code *gojq.Code, doc map[string]any) ([][]any, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	iter := code.Run(v)
	var out [][]any
	for {
		res, ok := iter.Next()
		if !ok {
			break
		}
		if err, ok := res.(error); ok {
			if _, halt := err.(*gojq.HaltError); halt {
				break
			}
			// A path that does not exist in this document is no error.
			return out, nil
		}
		list, _ := res.([]any)
		for _, p := range list {
			if path, ok := p.([]any); ok {
				out = append(out, normalizePath(path))
			}
		}
	}
	return out, nil
}

// normalizePath turns jq's float indexes into ints.
func normalizePath(p []any) []any {
	out := make([]any, len(p))
	for i, s := range p {
		switch v := s.(type) {
		case float64:
			out[i] = int(v)
		default:
			out[i] = v
		}
	}
	return out
}

// parsePointer parses an RFC 6901 JSON pointer; numeric tokens may index
// arrays.
func parsePointer(p string) ([]any, error) {
	if p == "" {
		return nil, fmt.Errorf("empty pointer")
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("must start with /")
	}
	var out []any
	for _, tok := range strings.Split(p[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		out = append(out, tok)
	}
	return out, nil
}

func step(node any, key any) (any, bool) {
	switch n := node.(type) {
	case map[string]any:
		k, ok := key.(string)
		if !ok {
			return nil, false
		}
		v, ok := n[k]
		return v, ok
	case []any:
		i, ok := index(key)
		if !ok || i < 0 || i >= len(n) {
			return nil, false
		}
		return n[i], true
	}
	return nil, false
}

func index(key any) (int, bool) {
	switch k := key.(type) {
	case int:
		return k, true
	case string:
		i, err := strconv.Atoi(k)
		return i, err == nil
	}
	return 0, false
}

func get(doc map[string]any, path []any) (any, bool) {
	var node any = doc
	for _, k := range path {
		var ok bool
		if node, ok = step(node, k); !ok {
			return nil, false
		}
	}
	return node, true
}

// set writes v at path, creating maps on the way; it does nothing when
// an array on the way is too short.
func set(doc map[string]any, path []any, v any) {
	if len(path) == 0 {
		return
	}
	var node any = doc
	for i, k := range path {
		last := i == len(path)-1
		switch n := node.(type) {
		case map[string]any:
			key, ok := k.(string)
			if !ok {
				return
			}
			if last {
				n[key] = v
				return
			}
			next, ok := n[key]
			if !ok || next == nil {
				if _, isIdx := index(path[i+1]); isIdx {
					return
				}
				next = map[string]any{}
				n[key] = next
			}
			node = next
		case []any:
			idx, ok := index(k)
			if !ok || idx < 0 || idx >= len(n) {
				return
			}
			if last {
				n[idx] = v
				return
			}
			node = n[idx]
		default:
			return
		}
	}
}

// del removes the field at path (array elements are left in place).
func del(doc map[string]any, path []any) {
	if len(path) == 0 {
		return
	}
	parent, ok := get(doc, path[:len(path)-1])
	if !ok {
		return
	}
	if m, ok := parent.(map[string]any); ok {
		if k, ok := path[len(path)-1].(string); ok {
			delete(m, k)
		}
	}
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}
