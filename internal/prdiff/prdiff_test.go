package prdiff_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/prdiff"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

const origin = "https://github.com/company/ml-deployments.git"

const set = `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: production, namespace: argocd}
spec:
  generators:
  - list: {elements: [{model: fraud-detection}, {model: recommendation}]}
  template:
    metadata: {name: "{{model}}-production"}
    spec:
      project: default
      source:
        repoURL: ` + origin + `
        targetRevision: main
        path: models/{{model}}
        helm: {valueFiles: [values-production.yaml]}
      destination: {server: https://kubernetes.default.svc, namespace: ml-production}
`

// An ApplicationSet over two models: a change bumping one model's
// production version lists exactly that app, with the version line; a
// change to the shared chart lists every app using it; a change that
// breaks a template names the app and the render error; an app whose
// render did not change is not listed.
func TestDiff(t *testing.T) {
	repo := gittest.New(t)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/models", "models", nil)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/base", "base", nil)
	repo.Write(map[string]string{"argocd/set.yaml": set, "argocd/README.md": "not a manifest"})
	base := repo.Commit("base")
	gittest.Git(t, repo.Dir, "remote", "add", "origin", origin)
	ctx := context.Background()
	run := func(head string) *prdiff.Result {
		t.Helper()
		res, err := prdiff.Run(ctx, prdiff.Options{Repo: repo.Dir, Base: base, Head: head, Path: "argocd"})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	if res := run(base); res.Differs() {
		t.Fatalf("a revision against itself differs: %+v", res.Apps)
	}

	bump := repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": "model:\n  version: v2.4.0\n  replicas: 5\nautoscaling:\n  minReplicas: 5\n  maxReplicas: 20\n"}).Commit("promote fraud-detection v2.4.0 to production")
	res := run(bump)
	if len(res.Apps) != 1 || res.Apps[0].App != "argocd/fraud-detection-production" || res.Apps[0].Status != prdiff.Changed {
		t.Fatalf("a version bump: %+v", res.Apps)
	}
	if d := res.Apps[0].Diff; !strings.Contains(d, "-") || !strings.Contains(d, "v2.3.1") || !strings.Contains(d, "+") || !strings.Contains(d, "v2.4.0") {
		t.Errorf("the diff does not show the version line:\n%s", d)
	}
	for _, line := range strings.Split(res.Apps[0].Diff, "\n") {
		if (strings.HasPrefix(line, "+") || strings.HasPrefix(line, "-")) && !strings.HasPrefix(line, "+++") && !strings.HasPrefix(line, "---") &&
			!strings.Contains(line, "v2.") {
			t.Errorf("a changed line that is not the version: %q", line)
		}
	}

	repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": "model:\n  version: v2.3.1\n  replicas: 5\nautoscaling:\n  minReplicas: 5\n  maxReplicas: 20\n"}).Commit("back")
	svc, err := fs.ReadFile(examples.MLDeployments, "ml-deployments/base/model-server/templates/_service.tpl")
	if err != nil {
		t.Fatal(err)
	}
	shared := repo.Write(map[string]string{"base/model-server/templates/_service.tpl": strings.Replace(string(svc), "port: 80,", "port: 8080,", 1)}).Commit("the shared chart's Service port")
	res = run(shared)
	if len(res.Apps) != 2 {
		t.Fatalf("a shared chart change: %+v", res.Apps)
	}

	broken := repo.Write(map[string]string{"models/recommendation/templates/broken.yaml": "{{ .Values.nope.deeper }}\n"}).Commit("break a template")
	res = run(broken)
	if !res.Failed() {
		t.Fatalf("a broken template: %+v", res.Apps)
	}
	found := false
	for _, a := range res.Apps {
		if a.App == "argocd/recommendation-production" && a.Status == prdiff.Failed && strings.Contains(a.Error, "broken.yaml") {
			found = true
		}
	}
	if !found {
		t.Errorf("the broken app and its error are not named: %+v", res.Apps)
	}
}
