package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/cli"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// run runs the mlcd command line and returns its output and error.
func run(args ...string) (string, error) {
	root := cli.NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestCheckReadsPoliciesFromBase: a change that deletes mlcd.yaml and
// bumps a version fails `mlcd model check` (the policy-change check, and
// the gates of the base's policy still apply); a hand-set registry tag
// mlcd.deployed.production exempts nothing.
func TestCheckReadsPoliciesFromBase(t *testing.T) {
	origin := gittest.New(t)
	origin.CopyFS(examples.MLDeployments, "ml-deployments", "", nil)
	origin.Commit("initial")
	work := filepath.Join(t.TempDir(), "work")
	gittest.Git(t, filepath.Dir(work), "clone", "-q", origin.Dir, work)
	gittest.Git(t, work, "config", "user.name", "Dev")
	gittest.Git(t, work, "config", "user.email", "dev@example.com")
	gittest.Git(t, work, "checkout", "-q", "-b", "sneaky")
	values := filepath.Join(work, "models/fraud-detection/values-production.yaml")
	data, _ := os.ReadFile(values)
	os.WriteFile(values, []byte(strings.Replace(string(data), "version: v2.3.1", "version: v2.3.2", 1)), 0o644)
	os.Remove(filepath.Join(work, "models/fraud-detection/mlcd.yaml"))
	gittest.Git(t, work, "commit", "-qam", "bump and drop the policy")

	reg := registrytest.Start(t, registry.ServerOptions{})
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95, "latency_p99_ms": 40}, "production", "staging")
	// v2.3.2 never ran in staging, but someone tagged it as if it had
	// run in production.
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.2", map[string]float64{"auc": 0.96, "latency_p99_ms": 40})
	if err := reg.Client.SetModelVersionTag(context.Background(), "fraud-detection", "2", "mlcd.deployed.production", "2026-01-01T00:00:00Z"); err != nil {
		t.Fatal(err)
	}

	out, err := run("model", "check", "--repo", work, "--base", "origin/main", "--head", "HEAD", "--registry", reg.URL)
	if err == nil {
		t.Fatalf("check passed:\n%s", out)
	}
	for _, want := range []string{"policy changed: models/fraud-detection/mlcd.yaml: deleted", "staging deployment successful"} {
		if !strings.Contains(out+err.Error(), want) {
			t.Errorf("output lacks %q:\n%s\n%v", want, out, err)
		}
	}

	// With --allow-policy-change the head's policies apply: there is none
	// for fraud-detection, so nothing is gated and the check passes.
	out, err = run("model", "check", "--repo", work, "--base", "origin/main", "--head", "HEAD", "--registry", reg.URL, "--allow-policy-change")
	if err != nil || !strings.Contains(out, "allowed by --allow-policy-change") {
		t.Fatalf("--allow-policy-change: %v\n%s", err, out)
	}
}
