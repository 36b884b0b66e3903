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
	for _, want := range []string{"policy changed: models/fraud-detection/mlcd.yaml: deleted", "staging deployment successful", "rendered manifests (argocd):"} {
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

// TestInfraCheck: `mlcd infra check` passes the example's terraform,
// finds an undeclared variable, a syntax error and a module source out of
// the repository, reports a node-pool max_node_count change between two
// commits (table, JSON, JUnit), and runs inside `mlcd model check` when a
// change touches infrastructure/.
func TestInfraCheck(t *testing.T) {
	repo := gittest.New(t)
	repo.CopyFS(examples.MLDeployments, "ml-deployments", "", nil)
	base := repo.Commit("initial")
	if out, err := run("infra", "check", "--repo", repo.Dir); err != nil || !strings.Contains(out, "infrastructure/terraform: no findings") {
		t.Fatalf("the example's terraform: %v\n%s", err, out)
	}

	gke := filepath.Join(repo.Dir, "infrastructure/terraform/gke-cluster.tf")
	data, _ := os.ReadFile(gke)
	os.WriteFile(gke, []byte(strings.Replace(string(data), "max_node_count = 20", "max_node_count = 40", 1)), 0o644)
	head := repo.Commit("more GPU nodes")
	junit := filepath.Join(t.TempDir(), "infra.xml")
	out, err := run("infra", "check", "--repo", repo.Dir, "--base", base, "--head", head, "--junit", junit)
	if err != nil || !strings.Contains(out, "google_container_node_pool.gpu_pool  changed  autoscaling[0].max_node_count: 20 → 40  GPU node pool: autoscaling[0].max_node_count") {
		t.Fatalf("node-pool change: %v\n%s", err, out)
	}
	if x, _ := os.ReadFile(junit); !strings.Contains(string(x), `<testcase name="changed google_container_node_pool.gpu_pool"`) || !strings.Contains(string(x), "review: GPU node pool") {
		t.Errorf("junit:\n%s", x)
	}
	out, err = run("infra", "check", "--repo", repo.Dir, "--base", base, "--head", head, "-o", "json")
	if err != nil || !strings.Contains(out, `"action": "changed"`) || !strings.Contains(out, `"to": "40"`) {
		t.Errorf("json: %v\n%s", err, out)
	}
	// The same change through mlcd model check (no model version moved).
	out, err = run("model", "check", "--repo", repo.Dir, "--base", base, "--head", head, "--registry", "http://127.0.0.1:1")
	if err != nil || !strings.Contains(out, "infrastructure changed:") || !strings.Contains(out, "max_node_count: 20 → 40") {
		t.Errorf("model check with an infrastructure change: %v\n%s", err, out)
	}

	// Findings: an undeclared variable, a syntax error, a module source
	// out of the repository.
	repo.Write(map[string]string{
		"infrastructure/terraform/bad-ref.tf":    `resource "google_storage_bucket" "b" { name = "x-${var.zone}" }`,
		"infrastructure/terraform/bad-syntax.tf": "resource \"google_storage_bucket\" \"c\" {\n  name = \n",
		"infrastructure/terraform/bad-module.tf": `module "net" { source = "../../../elsewhere" }`,
	})
	out, err = run("infra", "check", "--repo", repo.Dir)
	if err == nil {
		t.Fatalf("findings pass:\n%s", out)
	}
	for _, want := range []string{`reference to undeclared variable "zone"`, "bad-syntax.tf", "syntax", `source ../../../elsewhere leaves the repository`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	bad := repo.Commit("broken infrastructure")
	if out, err := run("model", "check", "--repo", repo.Dir, "--base", head, "--head", bad, "--registry", "http://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "infra: ") {
		t.Errorf("model check passes broken infrastructure: %v\n%s", err, out)
	}
	out, _ = run("infra", "check", "--repo", repo.Dir, "--plan")
	if !strings.Contains(out, "plan: ") {
		t.Errorf("--plan says nothing:\n%s", out)
	}
}
