package controller_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestPromotionAfterSoak: promotion: {to: production, after: 1s} on
// staging writes the promotion once the version ran Healthy there for the
// soak time — on mlcd/promote/<model>/<version>/production for review,
// or, when production says approval: none, on the tracked branch, which
// production then syncs.
func TestPromotionAfterSoak(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startOpts(t, controller.Options{PollInterval: time.Minute, Registry: reg.Client})
	policy := func(approval string) string {
		return `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: staging, valuesFile: values-staging.yaml, application: fd-stg}
  - {name: production, valuesFile: values-production.yaml, application: fd-prd, requires: staging, approval: ` + approval + `}
  rollout:
    staging:
      promotion: {to: production, after: 1s}
`
	}
	values := func(v string) string {
		return fmt.Sprintf("model:\n  version: %s\n  replicas: 1\nautoscaling:\n  enabled: false\n", v)
	}
	repo := modelRepo(t)
	gittest.Git(t, repo.Dir, "config", "receive.denyCurrentBranch", "updateInstead")
	repo.Write(map[string]string{
		"models/fraud-detection/mlcd.yaml":              policy("required"),
		"models/fraud-detection/values-staging.yaml":    values("v2.3.1"),
		"models/fraud-detection/values-production.yaml": values("v2.3.1"),
	}).Commit("v2.3.1 everywhere")
	for _, v := range []string{"v2.3.1", "v2.3.2", "v2.3.3"} {
		registrytest.Register(t, reg.Client, "fraud-detection", v, map[string]float64{"auc": 0.95})
	}
	stg, prd := h.ns+"-stg", h.ns+"-prd"
	h.namespaceGone(t, stg)
	h.namespaceGone(t, prd)
	url := privateRemote(t, h, repo) // the promotion is pushed with the Secret's credentials
	h.create(strings.ReplaceAll(app, "values-production.yaml", "values-staging.yaml"), map[string]string{"{{NAME}}": "fd-stg", "{{REPO}}": url, "{{DEST}}": stg, "{{SELFHEAL}}": "true"})
	h.create(app, map[string]string{"{{NAME}}": "fd-prd", "{{REPO}}": url, "{{DEST}}": prd, "{{SELFHEAL}}": "true"})
	h.waitSynced("fd-stg", "")
	h.waitSynced("fd-prd", "")

	// Approval required: a branch for review, main untouched.
	head := repo.Write(map[string]string{"models/fraud-detection/values-staging.yaml": values("v2.3.2")}).Commit("v2.3.2 to staging")
	h.refresh("fd-stg")
	branch := "mlcd/promote/fraud-detection/v2.3.2/production"
	h.eventually(60*time.Second, "promotion branch "+branch, func() (bool, string) {
		out := gittest.Git(t, repo.Dir, "branch", "--list", branch)
		return strings.Contains(out, branch), out
	})
	if got := gittest.Git(t, repo.Dir, "show", branch+":models/fraud-detection/values-production.yaml"); !strings.Contains(got, "version: v2.3.2") {
		t.Errorf("promotion branch holds:\n%s", got)
	}
	if now := strings.TrimSpace(gittest.Git(t, repo.Dir, "rev-parse", "main")); now != head {
		t.Errorf("main moved to %s without approval", now)
	}
	h.waitEvent("fd-stg", "Promoted", "for review on branch "+branch)

	// approval: none: the promotion lands on main and production syncs it.
	repo.Write(map[string]string{
		"models/fraud-detection/mlcd.yaml":           policy("none"),
		"models/fraud-detection/values-staging.yaml": values("v2.3.3"),
	}).Commit("v2.3.3 to staging; production needs no approval")
	h.refresh("fd-stg")
	var promoted string
	h.eventually(60*time.Second, "promotion commit on main", func() (bool, string) {
		msg := gittest.Git(t, repo.Dir, "log", "-1", "--format=%H %s", "main")
		if strings.Contains(msg, "Promote fraud-detection v2.3.3 to production") {
			promoted = strings.Fields(msg)[0]
			return true, ""
		}
		return false, msg
	})
	h.refresh("fd-prd")
	h.waitSynced("fd-prd", promoted)
	if img := image(h.deployment(prd, "fraud-detection")); !strings.HasSuffix(img, ":v2.3.3") {
		t.Errorf("production runs %s", img)
	}
}

// TestWatchAfterRollout: with watch: {duration, analysis} the analysis
// keeps running after 100 %; a failure inside the window reverts the
// promotion in Git and the ordinary sync rolls the previous version out
// again (no canary for a return to the version the rollout replaced).
func TestWatchAfterRollout(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startOpts(t, controller.Options{PollInterval: time.Minute, Registry: reg.Client})
	metric := &errorRate{}
	metric.milli.Store(10)
	srv := httptest.NewServer(metric)
	defer srv.Close()
	values := func(v string) string {
		return fmt.Sprintf("model:\n  version: %s\n  replicas: 2\nautoscaling:\n  enabled: false\n", v)
	}
	repo := modelRepo(t)
	gittest.Git(t, repo.Dir, "config", "receive.denyCurrentBranch", "updateInstead")
	repo.Write(map[string]string{
		"models/fraud-detection/values-production.yaml": values("v2.3.1"),
		"models/fraud-detection/mlcd.yaml": `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: production, valuesFile: values-production.yaml, application: fd-watch}
  rollout:
    production:
      canary:
        steps: [{setWeight: 50}]
      watch:
        duration: 2m
        analysis: {templates: [{templateName: error-rate}], args: [{name: service, value: fraud-detection}]}
`,
	}).Commit("v2.3.1")
	for _, v := range []string{"v2.3.1", "v2.3.2"} {
		registrytest.Register(t, reg.Client, "fraud-detection", v, map[string]float64{"auc": 0.95})
	}
	dest := h.ns + "-watch"
	h.namespaceGone(t, dest)
	h.create(app, map[string]string{"{{NAME}}": "fd-watch", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitSynced("fd-watch", "")
	// The window's metric measures every 200ms without a count: it runs
	// until the window ends or it fails.
	h.createYAML(strings.NewReplacer("{{DEST}}", dest, "{{URL}}", srv.URL, "    count: 2\n", "").Replace(errorRateTemplate), &v1alpha1.AnalysisTemplate{})
	bump := repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": values("v2.3.2")}).Commit("promote v2.3.2")
	h.refresh("fd-watch")
	h.eventually(60*time.Second, "rolled out, watching", func() (bool, string) {
		mr := h.rollout("fd-watch")
		return mr != nil && mr.Status.Phase == "Healthy" && mr.Status.WatchUntil != nil && h.deployment(dest, "fraud-detection-canary") == nil, fmt.Sprint(mr)
	})
	h.waitSynced("fd-watch", bump)
	metric.milli.Store(300) // the new version misbehaves after the rollout
	var revert string
	h.eventually(60*time.Second, "a revert commit after the failed watch", func() (bool, string) {
		msg := gittest.Git(t, repo.Dir, "log", "-1", "--format=%H %B", "main")
		if strings.Contains(msg, "This reverts commit") && strings.Contains(msg, "watch analysis failed") {
			revert = strings.Fields(msg)[0]
			return true, ""
		}
		mr := h.rollout("fd-watch")
		return false, fmt.Sprintf("%s; rollout %s %s %+v", msg, mr.Status.Phase, mr.Status.Message, mr.Status.Analysis)
	})
	h.waitSynced("fd-watch", revert)
	h.eventually(60*time.Second, "v2.3.1 back at 2 replicas", func() (bool, string) {
		s := h.deployment(dest, "fraud-detection")
		return strings.HasSuffix(image(s), ":v2.3.1") && s.Status.UpdatedReplicas == 2 && s.Status.AvailableReplicas == 2 && h.deployment(dest, "fraud-detection-canary") == nil, image(s)
	})
	h.eventually(10*time.Second, "the failed watch on the rollout", func() (bool, string) {
		mr := h.rollout("fd-watch")
		return mr.Spec.CanaryVersion == "v2.3.2" && mr.Status.Phase == "Degraded" && mr.Status.RevertCommit == revert,
			fmt.Sprintf("%s %s %s", mr.Spec.CanaryVersion, mr.Status.Phase, mr.Status.RevertCommit)
	})
}
