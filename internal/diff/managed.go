package diff

import (
	"encoding/json"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// managedPaths returns the paths of the leaf fields that the named field
// managers own in live's managedFields. Fields ("f:") are followed into
// maps, list items by key ("k:{...}") into the array element whose fields
// match; set values ("v:") are not paths of their own and are skipped.
func managedPaths(live *unstructured.Unstructured, managers []string) [][]any {
	var out [][]any
	for _, mf := range live.GetManagedFields() {
		if !slices.Contains(managers, mf.Manager) || mf.FieldsV1 == nil {
			continue
		}
		var tree map[string]any
		if err := json.Unmarshal(mf.FieldsV1.Raw, &tree); err != nil {
			continue
		}
		walkFields(live.Object, tree, nil, &out)
	}
	return out
}

func walkFields(node any, tree map[string]any, prefix []any, out *[][]any) {
	leaf := true
	for k, sub := range tree {
		if k == "." {
			continue
		}
		subTree, _ := sub.(map[string]any)
		switch {
		case strings.HasPrefix(k, "f:"):
			leaf = false
			name := k[2:]
			path := append(slices.Clone(prefix), name)
			m, _ := node.(map[string]any)
			child := m[name]
			if len(subTree) == 0 {
				*out = append(*out, path)
				continue
			}
			walkFields(child, subTree, path, out)
		case strings.HasPrefix(k, "k:"):
			leaf = false
			var keyFields map[string]any
			if err := json.Unmarshal([]byte(k[2:]), &keyFields); err != nil {
				continue
			}
			list, _ := node.([]any)
			for i, item := range list {
				m, _ := item.(map[string]any)
				if m == nil || !matchesKey(m, keyFields) {
					continue
				}
				walkFields(item, subTree, append(slices.Clone(prefix), i), out)
			}
		}
	}
	if leaf && len(prefix) > 0 && len(tree) > 0 {
		*out = append(*out, prefix)
	}
}

func matchesKey(item, key map[string]any) bool {
	for k, v := range key {
		a, _ := json.Marshal(item[k])
		b, _ := json.Marshal(v)
		if string(a) != string(b) {
			return false
		}
	}
	return true
}
