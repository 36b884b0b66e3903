package v1alpha1

import (
	"embed"
	"fmt"
	"io/fs"
	"reflect"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// PartOfLabel marks mlcd's own CRDs (crds/*.yaml carry it) and everything
// deploy/ installs.
const (
	PartOfLabel = "app.kubernetes.io/part-of"
	PartOfMLCD  = "mlcd"
)

//go:embed crds/*.yaml
var crdFiles embed.FS

// CRDs returns the CustomResourceDefinitions mlcd installs at start. The
// status is written with the main resource (no status subresource), as
// Argo CD does, so one update carries spec-derived fields and status.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	entries, err := fs.ReadDir(crdFiles, "crds")
	if err != nil {
		return nil, err
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, e := range entries {
		data, err := crdFiles.ReadFile("crds/" + e.Name())
		if err != nil {
			return nil, err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return nil, fmt.Errorf("crd %s: %w", e.Name(), err)
		}
		generateSchema(crd)
		out = append(out, crd)
	}
	return out, nil
}

// generated are the schemas of each kind's top-level fields, from the Go
// types (SchemaOf); the YAML files hold names, printer columns and the
// required lists. Status stays open: mlcd writes it.
var generated = map[string]map[string]reflect.Type{
	"Application":             {"spec": reflect.TypeOf(ApplicationSpec{}), "operation": reflect.TypeOf(Operation{})},
	"AppProject":              {"spec": reflect.TypeOf(AppProjectSpec{})},
	"ApplicationSet":          {"spec": reflect.TypeOf(ApplicationSetSpec{})},
	"ModelPolicy":             {"spec": reflect.TypeOf(ModelPolicySpec{})},
	"ModelRollout":            {"spec": reflect.TypeOf(ModelRolloutSpec{})},
	"AnalysisTemplate":        {"spec": reflect.TypeOf(AnalysisTemplateSpec{})},
	"ClusterAnalysisTemplate": {"spec": reflect.TypeOf(AnalysisTemplateSpec{})},
}

func generateSchema(crd *apiextensionsv1.CustomResourceDefinition) {
	fields := generated[crd.Spec.Names.Kind]
	for i := range crd.Spec.Versions {
		v := &crd.Spec.Versions[i]
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		root := v.Schema.OpenAPIV3Schema
		for name, t := range fields {
			s := SchemaOf(t)
			if old, ok := root.Properties[name]; ok && len(old.Required) > 0 {
				s.Required = old.Required
			}
			root.Properties[name] = s
		}
	}
}
