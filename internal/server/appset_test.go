package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

const listSet = `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: envs, namespace: {{NS}}}
spec:
  generators:
  - list: {elements: [{env: a, path: manifests}, {env: b, path: manifests}]}
  template:
    metadata: {name: "envs-{{env}}"}
    spec:
      project: default
      source: {repoURL: {{REPO}}, targetRevision: main, path: "{{path}}"}
      destination: {server: https://kubernetes.default.svc, namespace: {{NS}}}
`

// TestAppSetGenerateDiff: `mlcd appset generate FILE --diff` previews, from
// the live set through the API, which apps would be created, changed and
// deleted; `mlcd appset list|get` show the set and its apps.
func TestAppSetGenerateDiff(t *testing.T) {
	e := start(t)
	repo := repoWith(t, "one")
	doc := strings.NewReplacer("{{NS}}", e.ns, "{{REPO}}", repo.URL()).Replace(listSet)
	set := &v1alpha1.ApplicationSet{}
	if err := yaml.UnmarshalStrict([]byte(doc), set); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Create(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var list v1alpha1.ApplicationList
		e.c.List(context.Background(), &list, client.InNamespace(e.ns), client.MatchingLabels{v1alpha1.AppSetLabel: "envs"})
		if len(list.Items) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d apps generated", len(list.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := e.mlcd(readonlyToken, "appset", "get", "envs")
	if err != nil || !strings.Contains(out, e.ns+"/envs-a") || !strings.Contains(out, "Applications (2)") {
		t.Fatalf("appset get: %s %v", out, err)
	}
	// b's path changes, a goes, c comes.
	changed := strings.Replace(doc, "[{env: a, path: manifests}, {env: b, path: manifests}]", "[{env: b, path: other}, {env: c, path: manifests}]", 1)
	file := filepath.Join(t.TempDir(), "set.yaml")
	os.WriteFile(file, []byte(changed), 0o644)
	out, err = e.mlcd(readonlyToken, "appset", "generate", file, "--diff", "--repo-dir", repo.Dir)
	if err != nil {
		t.Fatal(out, err)
	}
	for _, want := range []string{"+ " + e.ns + "/envs-c: would be created", "~ " + e.ns + "/envs-b: spec would change", "+  path: other", "- " + e.ns + "/envs-a: would be deleted"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	if out, err := e.mlcd(readonlyToken, "appset", "generate", filepath.Join(t.TempDir(), "none.yaml"), "--diff"); err == nil || !strings.Contains(out+err.Error(), "no such file") {
		t.Errorf("missing file: %s %v", out, err)
	}
}
