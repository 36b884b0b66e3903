package controller_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
)

// TestDeploymentNotes: two governed apps synced Healthy from one commit
// both appear in that commit's note under refs/notes/mlcd of the
// repository, each with its environment, version and health.
func TestDeploymentNotes(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startWith(t, time.Minute, reg.Client)
	repo := modelRepo(t)
	sha := repo.Write(map[string]string{"models/fraud-detection/mlcd.yaml": policy}).Commit("policy")
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95})
	staging, prod := h.ns+"-stg", h.ns+"-prod"
	h.namespaceGone(t, staging)
	h.namespaceGone(t, prod)
	for name, dest := range map[string]string{"fd-staging": staging, "fd-production": prod} {
		doc := strings.ReplaceAll(app, "values-production.yaml", "values-"+strings.TrimPrefix(name, "fd-")+".yaml")
		h.create(doc, map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	}
	h.waitSynced("fd-staging", sha)
	h.waitSynced("fd-production", sha)
	var note string
	h.eventually(60*time.Second, "both apps in the commit's note", func() (bool, string) {
		out, _ := exec.Command("git", "-C", repo.Dir, "notes", "--ref=mlcd", "show", sha).CombinedOutput()
		note = string(out)
		return strings.Contains(note, "app: "+h.ns+"/fd-staging | environment: staging | model: fraud-detection | version: v2.3.1 | sync: Synced | health: Healthy") &&
			strings.Contains(note, "app: "+h.ns+"/fd-production | environment: production | model: fraud-detection | version: v2.3.1 | sync: Synced | health: Healthy"), note
	})
	if n := strings.Count(note, "app: "); n != 2 {
		t.Errorf("the note holds %d lines:\n%s", n, note)
	}
}
