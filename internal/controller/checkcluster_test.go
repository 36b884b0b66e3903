package controller_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/internal/cli"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestCheckWithClusterPolicies: an app governed by a ModelPolicy object
// (no mlcd.yaml in Git) is checked by `mlcd model check --kubeconfig`;
// without the cluster its bump is not seen as a model change.
func TestCheckWithClusterPolicies(t *testing.T) {
	h := start(t, time.Minute)
	env := clustertest.Get(t)
	reg := registrytest.Start(t, registry.ServerOptions{})
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95})
	h.create(`apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection, namespace: {{NS}}}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: production, valuesFile: values-production.yaml, application: fd-cluster}
`, nil)
	origin := modelRepo(t)
	appDoc := strings.NewReplacer("{{NAME}}", "fd-cluster", "{{NS}}", h.ns, "{{REPO}}", origin.URL(), "{{DEST}}", "x", "{{SELFHEAL}}", "true").Replace(app)
	origin.Write(map[string]string{"argocd/fd.yaml": appDoc}).Commit("app")
	work := filepath.Join(t.TempDir(), "work")
	gittest.Git(t, filepath.Dir(work), "clone", "-q", origin.Dir, work)
	values := filepath.Join(work, "models/fraud-detection/values-production.yaml")
	data, _ := os.ReadFile(values)
	os.WriteFile(values, []byte(strings.Replace(string(data), "version: v2.3.1", "version: v9.9.9", 1)), 0o644)
	gittest.Git(t, work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "bump")

	run := func(args ...string) (string, error) {
		root := cli.NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"model", "check", "--repo", work, "--base", "origin/main", "--head", "HEAD", "--registry", reg.URL}, args...))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	out, err := run()
	if err != nil || !strings.Contains(out, "no model version changes") {
		t.Fatalf("without the cluster: %v\n%s", err, out)
	}
	out, err = run("--kubeconfig", env.Kubeconfig, "--namespace", h.ns)
	if err == nil || !strings.Contains(out+err.Error(), "model exists in registry") || !strings.Contains(out, "v2.3.1 -> v9.9.9") {
		t.Fatalf("with the cluster's ModelPolicy: %v\n%s", err, out)
	}
}
