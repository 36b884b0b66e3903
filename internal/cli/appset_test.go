package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAppSetGenerate prints what the controller would create, from a
// local checkout, for Argo CD's list and matrix shapes.
func TestAppSetGenerate(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"models/fraud-detection", "models/recommendation"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
		os.WriteFile(filepath.Join(dir, d, "Chart.yaml"), []byte("name: x\n"), 0o644)
	}
	set := filepath.Join(t.TempDir(), "set.yaml")
	os.WriteFile(set, []byte(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: models, namespace: argocd}
spec:
  goTemplate: true
  generators:
  - matrix:
      generators:
      - git: {repoURL: https://example.com/ml.git, revision: main, directories: [{path: "models/*"}]}
      - list: {elements: [{env: staging}, {env: production}]}
  template:
    metadata: {name: '{{.path.basename}}-{{.env}}'}
    spec:
      project: 'ml-{{.env}}'
      source: {repoURL: https://example.com/ml.git, targetRevision: main, path: '{{.path.path}}', helm: {valueFiles: ['values-{{.env}}.yaml']}}
      destination: {server: https://kubernetes.default.svc, namespace: 'ml-{{.env}}'}
`), 0o644)
	out, err := run("appset", "generate", set, "--repo-dir", dir, "-o", "name")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "fraud-detection-staging\nfraud-detection-production\nrecommendation-staging\nrecommendation-production\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	out, err = run("appset", "generate", set, "--repo-dir", dir)
	if err != nil || !strings.Contains(out, "valueFiles:\n      - values-production.yaml") || !strings.Contains(out, "argocd.argoproj.io/application-set-name: models") {
		t.Fatalf("yaml: %v\n%s", err, out)
	}
}
