package appset

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// dirRepos is a repository checked out in a directory.
type dirRepos struct {
	dir string
	err error
}

func (d dirRepos) Checkout(string, string) (string, error) { return d.dir, d.err }

func set(t *testing.T, doc string) *v1alpha1.ApplicationSet {
	t.Helper()
	s := &v1alpha1.ApplicationSet{}
	if err := yaml.UnmarshalStrict([]byte(doc), s); err != nil {
		t.Fatal(err)
	}
	s.Namespace = "argocd"
	return s
}

func tree(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	return dir
}

func names(apps []*v1alpha1.Application) []string {
	var out []string
	for _, a := range apps {
		out = append(out, a.Name)
	}
	return out
}

// The bundled example: git directories models/* × list of environments.
const modelsTimesEnvs = `metadata: {name: models}
spec:
  generators:
  - matrix:
      generators:
      - git: {repoURL: https://example.com/ml.git, revision: main, directories: [{path: "models/*"}, {path: models/archived, exclude: true}]}
      - list: {elements: [{env: staging}, {env: production}]}
  template:
    metadata: {name: "{{path.basename}}-{{env}}"}
    spec:
      project: "ml-{{env}}"
      source: {repoURL: https://example.com/ml.git, targetRevision: main, path: "{{path}}", helm: {valueFiles: ["values-{{env}}.yaml"]}}
      destination: {server: https://kubernetes.default.svc, namespace: "ml-{{env}}"}
`

func TestGitDirectoriesTimesList(t *testing.T) {
	dir := tree(t, map[string]string{
		"models/fraud-detection/Chart.yaml": "name: f", "models/recommendation/Chart.yaml": "name: r",
		"models/archived/Chart.yaml": "name: a", "argocd/x.yaml": "",
	})
	s := set(t, modelsTimesEnvs)
	params, err := Generate(s, Inputs{Repos: dirRepos{dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	apps, err := Render(s, params)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fraud-detection-staging", "fraud-detection-production", "recommendation-staging", "recommendation-production"}
	if !reflect.DeepEqual(names(apps), want) {
		t.Fatalf("apps %v, want %v", names(apps), want)
	}
	a := apps[1]
	if a.Spec.Project != "ml-production" || a.Spec.Source.Path != "models/fraud-detection" || a.Spec.Source.Helm.ValueFiles[0] != "values-production.yaml" || a.Labels[v1alpha1.AppSetLabel] != "models" || a.Namespace != "argocd" {
		t.Errorf("rendered %+v", a)
	}
	if len(a.Finalizers) != 1 || a.Finalizers[0] != v1alpha1.ResourcesFinalizer {
		t.Errorf("finalizers %v: a generated app deletes its resources unless preserveResourcesOnDeletion", a.Finalizers)
	}
	// A failing repository fails the generator, naming it.
	_, err = Generate(s, Inputs{Repos: dirRepos{err: errors.New("repository unreachable")}})
	var ge *GeneratorError
	if !errors.As(err, &ge) || ge.Kind != "matrix" || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestGoTemplate(t *testing.T) {
	s := set(t, `metadata: {name: go}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - list: {elements: [{cluster: Prod East, url: "https://1.2.3.4", team: {name: ml}}]}
  template:
    metadata: {name: '{{ .cluster | slugify }}-{{ .team.name }}', labels: {team: '{{ .team.name | upper }}'}}
    spec:
      project: default
      source: {repoURL: https://example.com/ml.git, path: '{{ normalize .cluster }}'}
      destination: {server: '{{ .url }}', namespace: ml}
  templatePatch: |
    spec:
      revisionHistoryLimit: 3
`)
	params, err := Generate(s, Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	apps, err := Render(s, params)
	if err != nil {
		t.Fatal(err)
	}
	a := apps[0]
	if a.Name != "prod-east-ml" || a.Labels["team"] != "ML" || a.Spec.Source.Path != "prod-east" || a.Spec.Destination.Server != "https://1.2.3.4" || a.Spec.RevisionHistoryLimit == nil || *a.Spec.RevisionHistoryLimit != 3 {
		t.Fatalf("rendered %+v", a)
	}
	s.Spec.Template.Name = "{{ .missing }}"
	if _, err := Render(s, params); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missingkey=error: %v", err)
	}
	// env is not among the functions.
	s.Spec.Template.Name = `{{ env "HOME" }}`
	if _, err := Render(s, params); err == nil {
		t.Fatal("the env function is available to templates")
	}
}

func TestRenderErrors(t *testing.T) {
	s := set(t, `metadata: {name: bad}
spec:
  generators: [{list: {elements: [{id: a}, {id: a}]}}]
  template:
    metadata: {name: "app-{{id}}"}
    spec: {project: default, source: {repoURL: r, path: p}, destination: {namespace: x}}
`)
	params, _ := Generate(s, Inputs{})
	if _, err := Render(s, params); err == nil || !strings.Contains(err.Error(), "elements 0") || !strings.Contains(err.Error(), "both generate Application \"app-a\"") {
		t.Fatalf("duplicates: %v", err)
	}
	s.Spec.Template.Name = "App_{{id}}"
	if _, err := Render(s, params[:1]); err == nil || !strings.Contains(err.Error(), "invalid Application name") {
		t.Fatalf("invalid name: %v", err)
	}
}

func TestGitFilesAndMerge(t *testing.T) {
	dir := tree(t, map[string]string{
		"clusters/east/config.json": `{"cluster": {"name": "east", "replicas": 3}, "zones": ["a", "b"]}`,
		"clusters/west/config.json": `{"cluster": {"name": "west", "replicas": 1}}`,
	})
	s := set(t, `metadata: {name: files}
spec:
  generators:
  - merge:
      mergeKeys: [cluster.name]
      generators:
      - git: {repoURL: r, files: [{path: "clusters/*/config.json"}]}
      - list: {elements: [{cluster.name: west, cluster.replicas: "5"}]}
  template:
    metadata: {name: "{{cluster.name}}-{{path.basename}}"}
    spec: {project: default, source: {repoURL: r, path: "{{path}}", helm: {parameters: [{name: replicas, value: "{{cluster.replicas}}"}]}}, destination: {namespace: x}}
`)
	params, err := Generate(s, Inputs{Repos: dirRepos{dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	apps, err := Render(s, params)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range apps {
		got[a.Name] = a.Spec.Source.Helm.Parameters[0].Value
	}
	if !reflect.DeepEqual(got, map[string]string{"east-east": "3", "west-west": "5"}) {
		t.Fatalf("apps %v", got)
	}
	if params[0]["zones"] != `["a","b"]` || params[0]["path.filename"] != "config.json" {
		t.Errorf("flattened params %v", params[0])
	}
}

func TestClustersAndSelector(t *testing.T) {
	s := set(t, `metadata: {name: c}
spec:
  generators:
  - clusters: {selector: {matchLabels: {env: prod}}, values: {tier: gold}}
  template:
    metadata: {name: "fd-{{name}}-{{values.tier}}"}
    spec: {project: default, source: {repoURL: r, path: p}, destination: {server: "{{server}}", namespace: x}}
`)
	params, err := Generate(s, Inputs{Clusters: []Cluster{InCluster, {Name: "east", Server: "https://east", Labels: map[string]string{"env": "prod"}}}})
	if err != nil {
		t.Fatal(err)
	}
	apps, _ := Render(s, params)
	if !reflect.DeepEqual(names(apps), []string{"fd-east-gold"}) || apps[0].Spec.Destination.Server != "https://east" {
		t.Fatalf("apps %v", names(apps))
	}
}
