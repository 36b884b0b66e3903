package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

const wavesApp = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: {{NAME}}, namespace: {{NS}}}
spec:
  project: default
  source: {repoURL: {{REPO}}, targetRevision: main, path: manifests}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`

func job(name, annotations, extra string) string {
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %s
  annotations: {%s}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
%s`, name, annotations, extra)
}

func deployment(name, version, annotations string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  annotations: {%s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec: {containers: [{name: c, image: "server:%s"}]}
`, name, annotations, name, name, version)
}

// TestSyncWavesAndHooks: a wave-1 Deployment is applied only once the
// wave-0 Job (a PreSync smoke check of the model, then a migration Job in
// wave 0) completed; the operation runs its hooks once and records them.
// A failing PreSync hook leaves the running version untouched, runs the
// SyncFail hook and the app says which hook failed and why.
func TestSyncWavesAndHooks(t *testing.T) {
	h := start(t, time.Minute)
	repo := gittest.New(t)
	repo.Write(map[string]string{
		"manifests/smoke.yaml":   job("smoke-check", `argocd.argoproj.io/hook: PreSync`, ""),
		"manifests/migrate.yaml": job("migrate", `argocd.argoproj.io/sync-wave: "0"`, ""),
		"manifests/server.yaml":  deployment("server", "v1", `argocd.argoproj.io/sync-wave: "1"`),
		"manifests/notify.yaml":  job("notify-failure", `argocd.argoproj.io/hook: SyncFail`, ""),
	})
	sha := repo.Commit("waves")
	dest := h.ns + "-waves"
	h.namespaceGone(t, dest)
	h.create(wavesApp, map[string]string{"{{NAME}}": "waves", "{{REPO}}": repo.URL(), "{{DEST}}": dest})
	ctx := context.Background()
	getJob := func(name string) *batchv1.Job {
		j := &batchv1.Job{}
		if h.c.Get(ctx, types.NamespacedName{Namespace: dest, Name: name}, j) != nil {
			return nil
		}
		return j
	}
	complete := func(j *batchv1.Job) bool {
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == "True" {
				return true
			}
		}
		return false
	}
	// Order: the Deployment appears only after the wave-0 Job completed,
	// which appears only after the PreSync hook completed.
	h.eventually(60*time.Second, "the server Deployment", func() (bool, string) {
		d := h.deployment(dest, "server")
		smoke, migrate := getJob("smoke-check"), getJob("migrate")
		if migrate != nil && (smoke == nil || !complete(smoke)) {
			t.Fatalf("wave 0 applied before the PreSync hook completed")
		}
		if d != nil && (migrate == nil || !complete(migrate)) {
			t.Fatalf("the wave-1 Deployment was applied before the wave-0 Job completed")
		}
		return d != nil, fmt.Sprint(h.app("waves").Status.OperationState)
	})
	a := h.waitSynced("waves", sha)
	st := a.Status.OperationState
	if st.Phase != v1alpha1.PhaseSucceeded || len(a.Status.History) != 1 {
		t.Fatalf("operation %s, history %d", st.Phase, len(a.Status.History))
	}
	var hookRecorded bool
	for _, r := range st.SyncResult.Resources {
		if r.Name == "smoke-check" && r.HookType == "PreSync" && r.HookPhase == "Succeeded" {
			hookRecorded = true
		}
	}
	if !hookRecorded {
		t.Errorf("PreSync hook not recorded: %+v", st.SyncResult.Resources)
	}
	for _, rs := range a.Status.Resources {
		if rs.Name == "smoke-check" || rs.Name == "notify-failure" {
			t.Errorf("a hook is in the inventory: %+v", rs)
		}
	}
	if getJob("notify-failure") != nil {
		t.Error("the SyncFail hook ran on a successful sync")
	}
	// Hooks run once per operation: a resync at rest creates nothing.
	uid := getJob("smoke-check").UID
	h.refresh("waves")
	time.Sleep(3 * time.Second)
	if j := getJob("smoke-check"); j == nil || j.UID != uid {
		t.Fatal("the PreSync hook ran again without a new sync operation")
	}

	// v2 with a PreSync hook that fails (it cannot be scheduled and its
	// deadline passes): v1 keeps running, SyncFail runs, the app says why.
	repo.Write(map[string]string{
		"manifests/smoke.yaml":  job("smoke-check", `argocd.argoproj.io/hook: PreSync`, "      nodeSelector: {mlcd.io/no-such-node: \"true\"}\n  activeDeadlineSeconds: 1\n"),
		"manifests/server.yaml": deployment("server", "v2", `argocd.argoproj.io/sync-wave: "1"`),
	})
	bad := repo.Commit("v2 with a failing smoke check")
	h.refresh("waves")
	h.waitCondition("waves", v1alpha1.ConditionSyncError, "PreSync hook Job smoke-check failed")
	if img := image(h.deployment(dest, "server")); img != "server:v1" {
		t.Fatalf("the running version changed to %s", img)
	}
	if getJob("notify-failure") == nil {
		t.Error("the SyncFail hook did not run")
	}
	a = h.app("waves")
	if a.Status.OperationState.Phase != v1alpha1.PhaseFailed || a.Status.Sync.Status == v1alpha1.SyncStatusSynced || a.Status.Sync.Revision != bad || !strings.Contains(a.Status.OperationState.Message, "DeadlineExceeded") && !strings.Contains(a.Status.OperationState.Message, "deadline") {
		t.Errorf("after the failed hook: %s %q sync=%s", a.Status.OperationState.Phase, a.Status.OperationState.Message, a.Status.Sync.Status)
	}
	_ = controller.DefaultSyncTimeout
}
