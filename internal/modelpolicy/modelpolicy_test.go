package modelpolicy

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// mapReader is a tree in memory.
type mapReader map[string]string

func (m mapReader) Read(p string) ([]byte, error) {
	if s, ok := m[p]; ok {
		return []byte(s), nil
	}
	return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
}

const policy = `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud}
spec:
  registeredModel: fraud
  image: registry.local/fraud
  environments:
  - {name: staging, valuesFile: values-staging.yaml, application: fraud-staging}
  - {name: production, valuesFile: values-production.yaml}
  - {name: canary, valuesFile: overlays/canary/kustomization.yaml}
`

var tree = mapReader{
	"models/fraud/mlcd.yaml":                          policy,
	"models/fraud/values-staging.yaml":                "model: {version: v1}\n",
	"models/fraud/values-production.yaml":             "model: {version: v0}\n",
	"models/fraud/overlays/canary/kustomization.yaml": "images: [{name: registry.local/fraud, newTag: v3}]\n",
	"models/plain/Chart.yaml":                         "name: plain\n",
}

func app(t *testing.T, doc string) *v1alpha1.Application {
	t.Helper()
	a := &v1alpha1.Application{}
	if err := yaml.Unmarshal([]byte(doc), a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestForApp(t *testing.T) {
	cases := []struct {
		name, app string
		env       string // "" = not governed
		err       error
		version   string
		values    map[string]any
	}{
		{"named app", `{metadata: {name: fraud-staging}, spec: {source: {path: models/fraud, helm: {valueFiles: [values-staging.yaml]}}}}`, "staging", nil, "v1", map[string]any{"model": map[string]any{"version": "v1"}}},
		// The case the controller and check disagreed on: the values file
		// of an environment that names another application.
		{"values file of an environment naming another app", `{metadata: {name: rogue}, spec: {source: {path: models/fraud, helm: {valueFiles: [values-staging.yaml]}}}}`, "", ErrNotAnEnvironment, "", nil},
		{"by values file", `{metadata: {name: anything}, spec: {source: {path: models/fraud/, helm: {valueFiles: [./values-production.yaml]}}}}`, "production", nil, "v9", map[string]any{"model": map[string]any{"version": "v9"}}},
		{"overlay below the policy", `{metadata: {name: c}, spec: {source: {path: models/fraud/overlays/canary}}}`, "canary", nil, "v3", nil},
		{"overlay with image override", `{metadata: {name: c}, spec: {source: {path: models/fraud/overlays/canary, kustomize: {images: ["registry.local/fraud:v4"]}}}}`, "canary", nil, "v4", nil},
		{"ungoverned", `{metadata: {name: p}, spec: {source: {path: models/plain}}}`, "", nil, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := app(t, c.app)
			m, err := ForApp(tree, a, nil)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.env == "" {
				if m != nil {
					t.Fatalf("governed by %s/%s", m.Policy.Name, m.Env.Name)
				}
				return
			}
			if m == nil || m.Env.Name != c.env {
				t.Fatalf("match = %+v, want env %s", m, c.env)
			}
			v, err := Version(tree, m, a, c.values)
			if err != nil || v != c.version {
				t.Fatalf("version = %q, %v; want %q", v, err, c.version)
			}
		})
	}
}

func TestForAppClusterPolicy(t *testing.T) {
	var mp v1alpha1.ModelPolicy
	if err := yaml.Unmarshal([]byte("metadata: {name: rec, namespace: argocd}\nspec: {registeredModel: rec, environments: [{name: prod, valuesFile: values.yaml, application: rec-prod}]}\n"), &mp); err != nil {
		t.Fatal(err)
	}
	m, err := ForApp(tree, app(t, `{metadata: {name: rec-prod}, spec: {source: {path: models/plain}}}`), []v1alpha1.ModelPolicy{mp})
	if err != nil || m == nil || m.Env.Name != "prod" {
		t.Fatalf("match = %+v, %v", m, err)
	}
	if _, err := Version(tree, m, app(t, `{metadata: {name: rec-prod}, spec: {source: {path: models/plain}}}`), map[string]any{}); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("no version: %v", err)
	}
}

func TestInvalidPolicy(t *testing.T) {
	bad := mapReader{"m/mlcd.yaml": "apiVersion: mlcd.io/v1alpha1\nkind: ModelPolicy\nmetadata: {name: x}\nspec: {environments: [{name: a}]}\n"}
	if _, err := ForApp(bad, app(t, `{metadata: {name: a}, spec: {source: {path: m}}}`), nil); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("err = %v", err)
	}
}

func TestOverride(t *testing.T) {
	pol, _ := Read(tree, "models/fraud")
	a := app(t, `{metadata: {name: fraud-staging}, spec: {source: {path: models/fraud, helm: {parameters: [{name: model.version, value: v7}]}}}}`)
	if v, ok := Override(a, pol, pol.Spec.Environments[0]); !ok || v != "v7" {
		t.Fatalf("override = %q %v", v, ok)
	}
	if v, err := FileTag(pol, "values-production.yaml", []byte("model: {version: v5}\n")); err != nil || v != "v5" {
		t.Fatalf("file tag = %q %v", v, err)
	}
}

func TestOwners(t *testing.T) {
	proj := func(name, models string) v1alpha1.AppProject {
		p := v1alpha1.AppProject{}
		p.Name = name
		if models != "" {
			p.Annotations = map[string]string{v1alpha1.AnnotationProjectModels: models}
		}
		return p
	}
	projects := []v1alpha1.AppProject{proj("team-a", "rec-*"), proj("team-b", "fraud-detection, churn"), proj("default", "")}
	cluster := []v1alpha1.ModelPolicy{{Spec: v1alpha1.ModelPolicySpec{RegisteredModel: "churn"}}}
	cluster[0].Annotations = map[string]string{v1alpha1.AnnotationModelProjects: "team-c"}
	for _, c := range []struct {
		project, model string
		ok             bool
	}{
		{"team-b", "fraud-detection", true},
		{"team-a", "fraud-detection", false},
		{"default", "fraud-detection", false},
		{"team-a", "rec-v2", true},
		{"team-c", "churn", true},
		{"team-b", "churn", true},
		{"team-a", "churn", false},
		{"team-a", "unmapped", true},
	} {
		err := MayGovern(c.project, c.model, projects, cluster)
		if (err == nil) != c.ok {
			t.Errorf("MayGovern(%s, %s) = %v, want ok=%v", c.project, c.model, err, c.ok)
		}
	}
}
