package promote_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/gate"
	"github.com/mlcd-dev/mlcd/internal/promote"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

const policy = `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: staging, valuesFile: values-staging.yaml, application: fraud-detection-staging}
  - {name: production, valuesFile: values-production.yaml, application: fraud-detection-production, requires: staging}
  gates:
  - {metric: auc, op: ">=", value: 0.92}
  - {metric: auc, notWorseThan: production, tolerance: 0.01}
`

const apps = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: fraud-detection-staging, namespace: argocd}
spec:
  project: default
  source:
    repoURL: https://example.invalid/ml-deployments.git
    path: models/fraud-detection
    helm: {valueFiles: [values-staging.yaml]}
  destination: {server: https://kubernetes.default.svc, namespace: ml-staging}
---
# production pins the version with a parameter, as the seed does
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: fraud-detection-production, namespace: argocd}
spec:
  project: default
  source:
    repoURL: https://example.invalid/ml-deployments.git
    path: models/fraud-detection
    helm:
      valueFiles: [values-production.yaml]
      parameters:
      - name: model.version
        value: "v2.3.1"
  destination: {server: https://kubernetes.default.svc, namespace: ml-production}
`

// setup makes an origin repository and a clone to work in.
func setup(t *testing.T) (origin *gittest.Repo, work string) {
	origin = gittest.New(t)
	origin.CopyFS(examples.MLDeployments, "ml-deployments/models/fraud-detection", "models/fraud-detection", nil)
	origin.CopyFS(examples.MLDeployments, "ml-deployments/base", "base", nil) // the shared model-server chart
	origin.Write(map[string]string{"models/fraud-detection/mlcd.yaml": policy, "argocd/applications/fraud-detection.yaml": apps})
	origin.Commit("initial")
	gittest.Git(t, origin.Dir, "config", "receive.denyCurrentBranch", "updateInstead")
	work = filepath.Join(t.TempDir(), "work")
	gittest.Git(t, filepath.Dir(work), "clone", "-q", origin.Dir, work)
	gittest.Git(t, work, "config", "user.name", "Tech Lead")
	gittest.Git(t, work, "config", "user.email", "lead@example.com")
	return origin, work
}

func register(t *testing.T, c *registry.Client, version string, auc float64, aliases ...string) {
	t.Helper()
	registrytest.Register(t, c, "fraud-detection", version, map[string]float64{"auc": auc}, aliases...)
}

func TestPromoteEditsTheOverridingParameterAndPushes(t *testing.T) {
	origin, work := setup(t)
	res, err := promote.Promote(context.Background(), promote.Options{Push: promote.Push{Dir: work}, Model: "fraud-detection", Version: "v2.3.2", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Branch != "promote/fraud-detection-v2.3.2-production" || !res.Pushed || res.From != "v2.3.1" {
		t.Fatalf("result %+v", res)
	}
	data, _ := os.ReadFile(filepath.Join(work, "argocd/applications/fraud-detection.yaml"))
	if !strings.Contains(string(data), `value: "v2.3.2"`) && !strings.Contains(string(data), "value: v2.3.2") {
		t.Fatalf("parameter not bumped:\n%s", data)
	}
	if !strings.Contains(string(data), "# production pins the version") {
		t.Errorf("comment lost:\n%s", data)
	}
	msg := gittest.Git(t, work, "log", "-1", "--format=%B")
	for _, want := range []string{"fraud-detection", "v2.3.2", "production", "Tech Lead"} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	if out := gittest.Git(t, origin.Dir, "branch", "--list", res.Branch); !strings.Contains(out, res.Branch) {
		t.Errorf("branch not pushed to origin")
	}
	// A second promotion to the same branch, and one onto a dirty tree, are refused.
	gittest.Git(t, work, "checkout", "-q", "main")
	if _, err := promote.Promote(context.Background(), promote.Options{Push: promote.Push{Dir: work, NoPush: true}, Model: "fraud-detection", Version: "v2.3.2", Env: "production"}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("existing branch: %v", err)
	}
	os.WriteFile(filepath.Join(work, "dirty.txt"), []byte("x"), 0o644)
	if _, err := promote.Promote(context.Background(), promote.Options{Push: promote.Push{Dir: work, NoPush: true}, Model: "fraud-detection", Version: "v2.3.3", Env: "production"}); err == nil || !strings.Contains(err.Error(), "uncommitted") {
		t.Errorf("dirty tree: %v", err)
	}
}

func TestPromoteValuesFileKeepsComments(t *testing.T) {
	_, work := setup(t)
	res, err := promote.Promote(context.Background(), promote.Options{Push: promote.Push{Dir: work, NoPush: true}, Model: "fraud-detection", Version: "v2.3.2", Env: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(work, res.File))
	if res.File != "models/fraud-detection/values-staging.yaml" || !strings.Contains(string(data), "version: v2.3.2") || !strings.Contains(string(data), "# Staging:") {
		t.Fatalf("%s:\n%s", res.File, data)
	}
	if res.Pushed || !strings.HasPrefix(res.PushCommand, "git push origin promote/") {
		t.Errorf("--no-push: %+v", res)
	}
}

func check(t *testing.T, c *registry.Client, work string) []promote.CheckResult {
	t.Helper()
	repo, err := git.PlainOpen(work)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := promote.Changes(repo, "origin/main", "HEAD", false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := promote.Check(context.Background(), c, changes, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func failedNames(rs []promote.CheckResult) string {
	var n []string
	for _, r := range rs {
		for _, c := range r.Failed() {
			n = append(n, c.Name)
		}
	}
	return strings.Join(n, ",")
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name     string
		registry func(c *registry.Client)
		want     string // failed checks, comma-separated
	}{
		{"passes", func(c *registry.Client) {
			register(t, c, "v2.3.1", 0.95, "production")
			register(t, c, "v2.3.2", 0.955, "staging")
		}, ""},
		{"unknown version", func(c *registry.Client) {
			register(t, c, "v2.3.1", 0.95, "production", "staging")
		}, gate.CheckExists + "," + gate.CheckOffline + "," + gate.CheckStaging},
		{"auc below gate", func(c *registry.Client) {
			register(t, c, "v2.3.1", 0.95, "production")
			register(t, c, "v2.3.2", 0.90, "staging")
		}, gate.CheckOffline},
		{"worse than production", func(c *registry.Client) {
			register(t, c, "v2.3.1", 0.97, "production")
			register(t, c, "v2.3.2", 0.95, "staging")
		}, gate.CheckOffline},
		{"version pending registration", func(c *registry.Client) {
			register(t, c, "v2.3.1", 0.95, "production")
			ctx := context.Background()
			if _, err := c.CreateModelVersion(ctx, "fraud-detection", registry.CreateVersionOptions{
				Source: "mlflow-artifacts:/models/fraud/v2.3.2", Tags: []registry.Tag{{Key: "version", Value: "v2.3.2"}},
			}); err != nil {
				t.Fatal(err)
			}
		}, gate.CheckExists + "," + gate.CheckOffline + "," + gate.CheckStaging},
		{"staging on another version", func(c *registry.Client) {
			register(t, c, "v2.3.1", 0.95, "production", "staging")
			register(t, c, "v2.3.2", 0.96)
		}, gate.CheckStaging},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, work := setup(t)
			if _, err := promote.Promote(context.Background(), promote.Options{Push: promote.Push{Dir: work, NoPush: true}, Model: "fraud-detection", Version: "v2.3.2", Env: "production"}); err != nil {
				t.Fatal(err)
			}
			reg := registrytest.Start(t, registry.ServerOptions{})
			tc.registry(reg.Client)
			res := check(t, reg.Client, work)
			if len(res) != 1 || res[0].Env != "production" || res[0].From != "v2.3.1" || res[0].Version != "v2.3.2" {
				t.Fatalf("changes = %+v", res)
			}
			if got := failedNames(res); got != tc.want {
				var buf bytes.Buffer
				promote.WriteTable(&buf, res)
				t.Fatalf("failed checks %q, want %q\n%s", got, tc.want, buf.String())
			}
			var junit bytes.Buffer
			if err := promote.WriteJUnit(&junit, res); err != nil || !strings.Contains(junit.String(), "<testsuite") {
				t.Errorf("junit: %v", err)
			}
		})
	}
}

func TestConflictingVersionsInOneDiff(t *testing.T) {
	_, work := setup(t)
	// Both the parameter and the values file change, to different versions.
	app := filepath.Join(work, "argocd/applications/fraud-detection.yaml")
	data, _ := os.ReadFile(app)
	os.WriteFile(app, bytes.Replace(data, []byte(`value: "v2.3.1"`), []byte(`value: "v2.3.2"`), 1), 0o644)
	f := filepath.Join(work, "models/fraud-detection/values-production.yaml")
	data, _ = os.ReadFile(f)
	os.WriteFile(f, bytes.Replace(data, []byte("v2.3.1"), []byte("v2.3.3"), 1), 0o644)
	gittest.Git(t, work, "commit", "-qam", "two versions")
	repo, _ := git.PlainOpen(work)
	if _, err := promote.Changes(repo, "origin/main", "HEAD", false); err == nil || !strings.Contains(err.Error(), "conflicting versions") {
		t.Fatalf("got %v, want a conflicting-versions error", err)
	}
}

func TestValuesBumpHiddenByParameterChangesNothing(t *testing.T) {
	_, work := setup(t)
	// The values file says one thing, the Application parameter another:
	// the parameter wins at render time, so only it counts...
	f := filepath.Join(work, "models/fraud-detection/values-production.yaml")
	data, _ := os.ReadFile(f)
	os.WriteFile(f, bytes.Replace(data, []byte("v2.3.1"), []byte("v9.9.9"), 1), 0o644)
	gittest.Git(t, work, "commit", "-qam", "values bump hidden by the parameter")
	repo, _ := git.PlainOpen(work)
	changes, err := promote.Changes(repo, "origin/main", "HEAD", false)
	if err != nil || len(changes) != 0 {
		t.Fatalf("a values bump overridden by a parameter changes nothing: %v %v", changes, err)
	}
}

func TestRollbackRevertsTheBump(t *testing.T) {
	_, work := setup(t)
	f := filepath.Join(work, "models/fraud-detection/values-staging.yaml")
	data, _ := os.ReadFile(f)
	os.WriteFile(f, bytes.Replace(data, []byte("v2.3.1"), []byte("v2.3.2"), 1), 0o644)
	gittest.Git(t, work, "commit", "-qam", "bump staging")
	bump := gittest.Git(t, work, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(work, "README.md"), []byte("later, unrelated"), 0o644)
	gittest.Git(t, work, "add", "README.md")
	gittest.Git(t, work, "commit", "-qm", "unrelated")

	res, err := promote.Rollback(context.Background(), promote.RollbackOptions{Push: promote.Push{Dir: work}, Model: "fraud-detection", Env: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reverted != bump || !res.Pushed {
		t.Fatalf("reverted %s (want %s), pushed %v", res.Reverted, bump, res.Pushed)
	}
	data, _ = os.ReadFile(f)
	if !strings.Contains(string(data), "version: v2.3.1") {
		t.Fatalf("after rollback:\n%s", data)
	}
	if msg := gittest.Git(t, work, "log", "-1", "--format=%B"); !strings.Contains(msg, "This reverts commit "+bump) {
		t.Errorf("not a git revert commit:\n%s", msg)
	}

	// An app rollback reverts the newest commit touching its path.
	res, err = promote.Rollback(context.Background(), promote.RollbackOptions{Push: promote.Push{Dir: work, NoPush: true}, App: "fraud-detection-staging"})
	if err != nil || res.Reverted != gittest.Git(t, work, "rev-parse", "HEAD~1") {
		t.Fatalf("app rollback: %+v %v", res, err)
	}
}

func plumbingHash(t *testing.T, s string) plumbing.Hash {
	t.Helper()
	return plumbing.NewHash(s)
}

// rankerPolicy governs a kustomize-deployed model by its image tag.
const rankerPolicy = `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: ranker}
spec:
  registeredModel: ranker
  image: ghcr.io/company/ranker
  environments:
  - {name: production, valuesFile: overlays/production/kustomization.yaml}
`

func TestKustomizeImageVersion(t *testing.T) {
	origin := gittest.New(t)
	origin.Write(map[string]string{
		"models/ranker/mlcd.yaml":                              rankerPolicy,
		"models/ranker/overlays/production/kustomization.yaml": "# production overlay\nresources: [../../base]\nimages:\n- name: ghcr.io/company/sidecar\n  newTag: \"7\"\n- name: ghcr.io/company/ranker\n  newTag: v1.0.0 # bumped by mlcd\n",
	})
	origin.Commit("ranker")
	work := filepath.Join(t.TempDir(), "work")
	gittest.Git(t, filepath.Dir(work), "clone", "-q", origin.Dir, work)
	res, err := promote.Promote(context.Background(), promote.Options{Push: promote.Push{Dir: work, NoPush: true}, Model: "ranker", Version: "v1.1.0", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(work, res.File))
	if res.From != "v1.0.0" || !strings.Contains(string(data), "newTag: v1.1.0 # bumped by mlcd") || !strings.Contains(string(data), `newTag: "7"`) {
		t.Fatalf("from %s:\n%s", res.From, data)
	}
	repo, _ := git.PlainOpen(work)
	changes, err := promote.Changes(repo, "origin/main", "HEAD", false)
	if err != nil || len(changes) != 1 || changes[0].Version != "v1.1.0" || changes[0].From != "v1.0.0" {
		t.Fatalf("changes %+v %v", changes, err)
	}
}

func TestRollbackThatConflictsChangesNothing(t *testing.T) {
	_, work := setup(t)
	f := filepath.Join(work, "models/fraud-detection/values-staging.yaml")
	data, _ := os.ReadFile(f)
	os.WriteFile(f, bytes.Replace(data, []byte("version: v2.3.1"), []byte("version: v2.3.2"), 1), 0o644)
	gittest.Git(t, work, "commit", "-qam", "bump staging")
	// A later edit of the same line that keeps the version.
	data, _ = os.ReadFile(f)
	os.WriteFile(f, bytes.Replace(data, []byte("version: v2.3.2"), []byte("version: v2.3.2 # canary passed"), 1), 0o644)
	gittest.Git(t, work, "commit", "-qam", "annotate")
	head := gittest.Git(t, work, "rev-parse", "HEAD")

	_, err := promote.Rollback(context.Background(), promote.RollbackOptions{Push: promote.Push{Dir: work, NoPush: true}, Model: "fraud-detection", Env: "staging"})
	if err == nil || !strings.Contains(err.Error(), "conflicts") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("got %v, want a conflict that changes nothing", err)
	}
	if got := gittest.Git(t, work, "rev-parse", "HEAD"); got != head {
		t.Errorf("HEAD moved to %s", got)
	}
	if st := gittest.Git(t, work, "status", "--porcelain"); st != "" {
		t.Errorf("work tree not clean after the aborted revert:\n%s", st)
	}
}

// An Application's kustomize.images override names the running version
// (it wins over the kustomization at render time): Deployments and Changes
// read it, and Promote rewrites it, keeping its form.
func TestKustomizeImageOverrideInApplication(t *testing.T) {
	origin := gittest.New(t)
	origin.Write(map[string]string{
		"models/ranker/mlcd.yaml":                              rankerPolicy,
		"models/ranker/overlays/production/kustomization.yaml": "resources: [../../base]\nimages:\n- name: ghcr.io/company/ranker\n  newTag: v1.0.0\n",
		"argocd/ranker.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: ranker-production, namespace: argocd}
spec:
  project: default
  source:
    repoURL: https://example.invalid/ml.git
    path: models/ranker/overlays/production
    kustomize:
      images:
      - ghcr.io/company/sidecar:7
      - ghcr.io/company/ranker=registry.internal/ranker:v1.2.0 # pinned here
  destination: {server: https://kubernetes.default.svc, namespace: ml-production}
`,
	})
	origin.Commit("ranker")
	work := filepath.Join(t.TempDir(), "work")
	gittest.Git(t, filepath.Dir(work), "clone", "-q", origin.Dir, work)
	repo, _ := git.PlainOpen(work)
	tree, _, err := promote.TreeAt(repo, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	deps, err := tree.Deployments()
	if err != nil || len(deps) != 1 || deps[0].Version != "v1.2.0" || deps[0].ValuesVersion != "v1.0.0" || deps[0].File != "argocd/ranker.yaml" {
		t.Fatalf("deployments %+v %v", deps, err)
	}
	res, err := promote.Promote(context.Background(), promote.Options{Push: promote.Push{Dir: work, NoPush: true}, Model: "ranker", Version: "v1.3.0", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(work, "argocd/ranker.yaml"))
	if res.From != "v1.2.0" || !strings.Contains(string(data), "- ghcr.io/company/ranker=registry.internal/ranker:v1.3.0 # pinned here") || !strings.Contains(string(data), "- ghcr.io/company/sidecar:7") {
		t.Fatalf("from %s:\n%s", res.From, data)
	}
	changes, err := promote.Changes(repo, "origin/main", "HEAD", false)
	if err != nil || len(changes) != 1 || changes[0].Version != "v1.3.0" || changes[0].From != "v1.2.0" {
		t.Fatalf("changes %+v %v", changes, err)
	}
}

func TestRevertMessageRoundTrip(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	if got, ok := promote.RevertedBy(promote.RevertMessage("Promote fd v2", sha, "latency")); !ok || got != sha {
		t.Fatalf("RevertedBy = %q, %v", got, ok)
	}
	if _, ok := promote.RevertedBy("Promote fd v3\n\nno revert here"); ok {
		t.Fatal("an ordinary message read as a revert")
	}
}
