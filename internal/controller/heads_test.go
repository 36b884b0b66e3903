package controller_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestPollWakesTouchedApps: when one app's poll (here a refresh of m1)
// fetches a commit that touches m2's directory, m2 syncs it at once —
// not at its own poll a minute later — and m3, untouched, is left to its
// poll.
func TestPollWakesTouchedApps(t *testing.T) {
	h := start(t, time.Minute)
	repo := gittest.New(t)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/base", "base", nil)
	for m := 1; m <= 3; m++ {
		repo.CopyFS(examples.MLDeployments, "ml-deployments/models/fraud-detection", fmt.Sprintf("models/m%d", m), nil)
		repo.Remove(fmt.Sprintf("models/m%d/mlcd.yaml", m))
		repo.Write(map[string]string{fmt.Sprintf("models/m%d/values.yaml", m): fmt.Sprintf("model: {name: m%d, version: v1, replicas: 1}\nimage: {repository: registry.example.com/models/m%d}\nresources: {requests: {cpu: 10m, memory: 16Mi}}\ngpu: 0\nautoscaling: {enabled: false}\n", m, m)})
	}
	first := repo.Commit("three models")
	doc := `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: {{NAME}}, namespace: {{NS}}}
spec:
  project: default
  source: {repoURL: {{REPO}}, targetRevision: main, path: models/{{NAME}}, helm: {valueFiles: [values-staging.yaml]}}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`
	for m := 1; m <= 3; m++ {
		name := fmt.Sprintf("m%d", m)
		h.namespaceGone(t, h.ns+"-"+name)
		h.create(doc, map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{DEST}}": h.ns + "-" + name})
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
}
