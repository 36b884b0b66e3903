package server_test

import (
	"context"
	"encoding/json"
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

// TestAppSetGenerateMatchesController: for Argo CD's own example shapes —
// a list generator with the default template, a matrix of two lists, and
// goTemplate with Sprig functions and missingkey=error — `mlcd appset
// generate` prints exactly the Applications (names and specs) the
// controller creates.
func TestAppSetGenerateMatchesController(t *testing.T) {
	e := start(t)
	repo := repoWith(t, "one")
	sets := map[string]string{
		"guestbook": `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: guestbook, namespace: {{NS}}}
spec:
  generators:
  - list:
      elements:
      - {cluster: engineering-dev, url: https://kubernetes.default.svc}
      - {cluster: engineering-prod, url: https://kubernetes.default.svc}
  template:
    metadata: {name: '{{cluster}}-guestbook'}
    spec:
      project: default
      source: {repoURL: {{REPO}}, targetRevision: HEAD, path: manifests}
      destination: {server: '{{url}}', namespace: {{NS}}}
`,
		"matrix": `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: matrix, namespace: {{NS}}}
spec:
  generators:
  - matrix:
      generators:
      - list: {elements: [{model: fraud}, {model: churn}]}
      - list: {elements: [{env: staging}, {env: production}]}
  template:
    metadata: {name: '{{model}}-{{env}}', labels: {env: '{{env}}'}}
    spec:
      project: default
      source: {repoURL: {{REPO}}, targetRevision: main, path: manifests, helm: {valueFiles: ['values-{{env}}.yaml']}}
      destination: {server: https://kubernetes.default.svc, namespace: {{NS}}}
`,
		"gotemplate": `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: gotemplate, namespace: {{NS}}}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - list: {elements: [{team: Fraud_Team, size: "3"}, {team: Recs_Team, size: "1"}]}
  template:
    metadata:
      name: '{{ .team | lower | replace "_" "-" }}'
      annotations: {replicas: '{{ mul (atoi .size) 2 }}'}
    spec:
      project: default
      source: {repoURL: {{REPO}}, targetRevision: main, path: manifests}
      destination: {server: https://kubernetes.default.svc, namespace: {{NS}}}
`,
	}
	for name, doc := range sets {
		t.Run(name, func(t *testing.T) {
			doc = strings.NewReplacer("{{NS}}", e.ns, "{{REPO}}", repo.URL()).Replace(doc)
			file := filepath.Join(t.TempDir(), "set.yaml")
			os.WriteFile(file, []byte(doc), 0o644)
			out, err := e.mlcd(readonlyToken, "appset", "generate", file, "--repo-dir", repo.Dir)
			if err != nil {
				t.Fatalf("generate: %v\n%s", err, out)
			}
			printed := map[string]v1alpha1.ApplicationSpec{}
			for _, part := range strings.Split(out, "---\n") {
				if strings.TrimSpace(part) == "" {
					continue
				}
				a := &v1alpha1.Application{}
				if err := yaml.Unmarshal([]byte(part), a); err != nil {
					t.Fatalf("generate printed %q: %v", part, err)
				}
				printed[a.Name] = a.Spec
			}
			set := &v1alpha1.ApplicationSet{}
			if err := yaml.UnmarshalStrict([]byte(doc), set); err != nil {
				t.Fatal(err)
			}
			if err := e.c.Create(context.Background(), set); err != nil {
				t.Fatal(err)
			}
			var list v1alpha1.ApplicationList
			deadline := time.Now().Add(30 * time.Second)
			for {
				e.c.List(context.Background(), &list, client.InNamespace(e.ns), client.MatchingLabels{v1alpha1.AppSetLabel: set.Name})
				if len(list.Items) >= len(printed) && len(printed) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d apps created, %d printed", len(list.Items), len(printed))
				}
				time.Sleep(100 * time.Millisecond)
			}
			if len(list.Items) != len(printed) {
				t.Fatalf("controller created %d apps, generate printed %d", len(list.Items), len(printed))
			}
			for _, a := range list.Items {
				want, ok := printed[a.Name]
				if !ok {
					t.Errorf("the controller created %s, which generate did not print", a.Name)
					continue
				}
				got, _ := json.Marshal(a.Spec)
				exp, _ := json.Marshal(want)
				if string(got) != string(exp) {
					t.Errorf("%s: controller spec %s, generate printed %s", a.Name, got, exp)
				}
			}
		})
	}
}
