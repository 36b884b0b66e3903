package controller_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestPathScopedRenders: in one repository of 5 models × 2 environments,
// a commit touching one model's directory renders that model's 2 apps,
// not 10; a commit touching only a file no app reads renders none; a
// commit to the chart every model depends on (base/, a file:// chart
// dependency) renders all 10; an app's manifest-generate-paths adds paths.
func TestPathScopedRenders(t *testing.T) {
	h := start(t, time.Minute)
	repo := modelsRepo(t, 5)
	repo.Write(map[string]string{"README.md": "models"})
	sha := repo.Commit("five models")
	var names []string
	for m := 1; m <= 5; m++ {
		for _, env := range []string{"staging", "production"} {
			name := fmt.Sprintf("m%d-%s", m, env)
			names = append(names, name)
			h.namespaceGone(t, h.ns+"-"+name)
			h.create(modelApp, map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{MODEL}}": fmt.Sprintf("m%d", m), "{{ENV}}": env, "{{DEST}}": h.ns + "-" + name})
		}
	}
	waitAll := func(sha string) {
		for _, n := range names {
			h.refresh(n)
		}
		for _, n := range names {
			h.waitSynced(n, sha)
		}
	}
	waitAll(sha)
	step := func(what string, files map[string]string, want int64) {
		t.Helper()
		before := h.renders()
		repo.Write(files)
		waitAll(repo.Commit(what))
		if got := h.renders() - before; got != want {
			t.Errorf("%s: %d renders, want %d", what, got, want)
		}
	}
	step("bump m3 in staging", map[string]string{"models/m3/values-staging.yaml": "model:\n  version: v2\n  replicas: 1\n"}, 2)
	step("edit the README", map[string]string{"README.md": "models, edited"}, 0)
	tpl := "base/model-server/templates/_service.tpl"
	data, err := examples.MLDeployments.ReadFile("ml-deployments/" + tpl)
	if err != nil {
		t.Fatal(err)
	}
	step("change the shared chart", map[string]string{tpl: strings.Replace(string(data), "port: 80", "port: 8080", 1)}, 10)
	// manifest-generate-paths: m1-staging also depends on docs/.
	h.patchApp("m1-staging", func(a *v1alpha1.Application) {
		if a.Annotations == nil {
			a.Annotations = map[string]string{}
		}
		a.Annotations["argocd.argoproj.io/manifest-generate-paths"] = ".;/docs"
	})
	waitAll(repo.Head()) // the annotation's own reconcile (docs/ does not exist yet: the commit is the key)
	time.Sleep(time.Second)
	step("add docs", map[string]string{"docs/notes.md": "x"}, 1)
}

// TestPollWakesTouchedApps: when one app's poll (here a refresh of m1)
// fetches a commit that touches m2's directory, m2 syncs it at once —
// not at its own poll a minute later — and m3, untouched, is left to its
// poll. A commit to the shared chart they all depend on wakes them all.
func TestPollWakesTouchedApps(t *testing.T) {
	h := start(t, time.Minute)
	repo := modelsRepo(t, 3)
	first := repo.Commit("three models")
	for m := 1; m <= 3; m++ {
		name := fmt.Sprintf("m%d", m)
		h.namespaceGone(t, h.ns+"-"+name)
		h.create(modelApp, map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{MODEL}}": name, "{{ENV}}": "staging", "{{DEST}}": h.ns + "-" + name})
	}
	for m := 1; m <= 3; m++ {
		h.waitSynced(fmt.Sprintf("m%d", m), first)
	}
	repo.Write(map[string]string{"models/m2/values-staging.yaml": "model:\n  version: v2\n  replicas: 1\n"})
	second := repo.Commit("bump m2")
	h.refresh("m1") // m1's reconcile fetches: a poll
	start := time.Now()
	h.eventually(15*time.Second, "m2 at the new commit", func() (bool, string) {
		rev := h.app("m2").Status.Sync.Revision
		return rev == second, shortSHA(rev)
	})
	t.Logf("m2 synced the commit m1's fetch found %s later", time.Since(start).Round(10*time.Millisecond))
	h.waitSynced("m2", second)
	if rev := h.app("m3").Status.Sync.Revision; rev != first {
		t.Errorf("m3, untouched by the commit, reconciled at %s before its poll", shortSHA(rev))
	}

	// A commit to the chart every model depends on (base/, a file://
	// dependency outside each app's path) touches every app's render: m1's
	// next fetch wakes m2 and m3 too.
	tpl := "base/model-server/templates/_service.tpl"
	data, err := examples.MLDeployments.ReadFile("ml-deployments/" + tpl)
	if err != nil {
		t.Fatal(err)
	}
	repo.Write(map[string]string{tpl: strings.Replace(string(data), "port: 80", "port: 8080", 1)})
	third := repo.Commit("change the shared chart")
	h.refresh("m1")
	for _, name := range []string{"m2", "m3"} {
		h.eventually(15*time.Second, name+" at the shared chart's commit", func() (bool, string) {
			rev := h.app(name).Status.Sync.Revision
			return rev == third, shortSHA(rev)
		})
	}
}

// modelApp is an automated app of model {{MODEL}} in environment {{ENV}}
// of a modelsRepo.
const modelApp = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: {{NAME}}, namespace: {{NS}}}
spec:
  project: default
  source: {repoURL: {{REPO}}, targetRevision: main, path: models/{{MODEL}}, helm: {valueFiles: [values-{{ENV}}.yaml]}}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`

// modelsRepo is a repository (not yet committed) of n models m1…mn, each
// a copy of the example's chart (without its ModelPolicy) with small pods,
// beside the shared chart they depend on.
func modelsRepo(t *testing.T, n int) *gittest.Repo {
	repo := gittest.New(t)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/base", "base", nil)
	for m := 1; m <= n; m++ {
		repo.CopyFS(examples.MLDeployments, "ml-deployments/models/fraud-detection", fmt.Sprintf("models/m%d", m), nil)
		repo.Remove(fmt.Sprintf("models/m%d/mlcd.yaml", m))
		repo.Write(map[string]string{fmt.Sprintf("models/m%d/values.yaml", m): fmt.Sprintf("model: {name: m%d, version: v1, replicas: 1}\nimage: {repository: registry.example.com/models/m%d}\nresources: {requests: {cpu: 10m, memory: 16Mi}}\ngpu: 0\nautoscaling: {enabled: false}\n", m, m)})
	}
	return repo
}
