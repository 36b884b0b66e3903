package controller_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/promote"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestModelUpdateWorkflowEndToEnd runs the seed's six steps: register →
// promote → check → signed approval → sync (alias moves) → rollback by
// git revert (previous version runs, alias back).
func TestModelUpdateWorkflowEndToEnd(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startWith(t, time.Minute, reg.Client)
	ctx := context.Background()
	lead, leadFP, leadPub := gittest.SSHKey(t)

	// The team's repository, and a clone to work in.
	origin := modelRepo(t)
	origin.Write(map[string]string{"models/fraud-detection/mlcd.yaml": policy}).Commit("policy")
	gittest.Git(t, origin.Dir, "config", "receive.denyCurrentBranch", "updateInstead")
	work := filepath.Join(t.TempDir(), "work")
	gittest.Git(t, filepath.Dir(work), "clone", "-q", origin.Dir, work)

	// Production requires commits signed by the tech lead.
	if err := h.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.GPGKeysConfigMap, Namespace: h.ns}, Data: map[string]string{"lead.pub": leadPub}}); err != nil {
		t.Fatal(err)
	}
	h.create(`
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: ml-production, namespace: {{NS}}}
spec:
  sourceRepos: ["*"]
  destinations: [{server: https://kubernetes.default.svc, namespace: "*"}]
  clusterResourceWhitelist: [{group: "", kind: Namespace}]
  signatureKeys: [{keyID: "`+leadFP+`"}]
`, nil)

	// 1. The data scientist registers v2.3.1 (running) and v2.3.2.
	v1 := registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95})
	v2 := registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.2", map[string]float64{"auc": 0.955})

	staging, prod := h.ns+"-stg", h.ns+"-prod"
	h.namespaceGone(t, staging)
	h.namespaceGone(t, prod)
	h.create(strings.ReplaceAll(app, "values-production.yaml", "values-staging.yaml"), map[string]string{"{{NAME}}": "fd-staging", "{{REPO}}": origin.URL(), "{{DEST}}": staging, "{{SELFHEAL}}": "true"})
	h.waitSynced("fd-staging", "")
	// Production starts from a signed revision.
	if _, err := promote.Approve(ctx, promote.ApproveOptions{Push: promote.Push{Dir: work}, KeyFile: lead}); err != nil {
		t.Fatal(err)
	}
	h.create(strings.Replace(app, "project: default", "project: ml-production", 1), map[string]string{"{{NAME}}": "fd-production", "{{REPO}}": origin.URL(), "{{DEST}}": prod, "{{SELFHEAL}}": "true"})
	h.refresh("fd-production") // the repo was fetched for staging before the approval
	h.waitSynced("fd-production", "")
	aliasIs := func(alias, want string) {
		t.Helper()
		h.eventually(20*time.Second, "alias "+alias+" = "+want, func() (bool, string) {
			v, err := reg.Client.GetVersionByAlias(ctx, "fraud-detection", alias)
			if err != nil {
				return false, err.Error()
			}
			return v.Version == want, v.Version
		})
	}
	aliasIs("production", v1.Version)

	// Staging goes first: promote, merge, sync, alias moves.
	gittest.Git(t, work, "pull", "-q", "origin", "main")
	if _, err := promote.Promote(ctx, promote.Options{Push: promote.Push{Dir: work}, Model: "fraud-detection", Version: "v2.3.2", Env: "staging"}); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, work, "push", "-q", "origin", "HEAD:main")
	h.refresh("fd-staging")
	aliasIs("staging", v2.Version)

	// 2. Promote to production on a branch.
	gittest.Git(t, work, "fetch", "-q", "origin")
	gittest.Git(t, work, "checkout", "-q", "-B", "main", "origin/main")
	res, err := promote.Promote(ctx, promote.Options{Push: promote.Push{Dir: work}, Model: "fraud-detection", Version: "v2.3.2", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	// 3. CI checks the branch.
	repo, _ := git.PlainOpen(work)
	changes, err := promote.Changes(repo, "origin/main", "HEAD", false)
	if err != nil || len(changes) != 1 {
		t.Fatalf("changes %v %v", changes, err)
	}
	results, err := promote.Check(ctx, reg.Client, changes, nil)
	if err != nil || !results[0].OK() {
		t.Fatalf("check: %+v %v", results, err)
	}
	// 4. The tech lead approves with a signed commit; the branch merges.
	if _, err := promote.Approve(ctx, promote.ApproveOptions{Push: promote.Push{Dir: work}, KeyFile: lead}); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, work, "push", "-q", "origin", "HEAD:main")
	// 5. The controller syncs and moves the production alias.
	h.refresh("fd-production")
	h.eventually(30*time.Second, "v2.3.2 in production", func() (bool, string) {
		d := h.deployment(prod, "fraud-detection")
		return d != nil && strings.HasSuffix(image(d), ":v2.3.2"), ""
	})
	aliasIs("production", v2.Version)

	// 6. Roll back with a real git revert on main; sync follows; alias back.
	gittest.Git(t, work, "checkout", "-q", "-B", "main", "origin/main")
	rb, err := promote.Rollback(ctx, promote.RollbackOptions{Push: promote.Push{Dir: work}, Model: "fraud-detection", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	if rb.Reverted != res.Commit {
		t.Errorf("reverted %s, want the promotion %s", rb.Reverted, res.Commit)
	}
	// The revert must be approved like any production change.
	if _, err := promote.Approve(ctx, promote.ApproveOptions{Push: promote.Push{Dir: work}, KeyFile: lead}); err != nil {
		t.Fatal(err)
	}
	h.refresh("fd-production")
	h.eventually(30*time.Second, "v2.3.1 back in production", func() (bool, string) {
		d := h.deployment(prod, "fraud-detection")
		a := h.app("fd-production")
		return d != nil && strings.HasSuffix(image(d), ":v2.3.1"), fmt.Sprintf("sync=%s %v healthy=%s", a.Status.Sync.Status, a.Status.Conditions, a.Annotations[v1alpha1.HealthyVersionsAnnotation])
	})
	aliasIs("production", v1.Version)
	h.eventually(10*time.Second, "reverted revision recorded", func() (bool, string) {
		a := h.app("fd-production")
		return strings.Contains(a.Annotations[v1alpha1.RevertedAnnotation], res.Commit), a.Annotations[v1alpha1.RevertedAnnotation]
	})
}
