package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

const canaryPolicy = `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: production, valuesFile: values-production.yaml, application: fd-canary}
  rollout:
    production:
      canary:
        steps:
        - setWeight: 10
        - analysis: {templates: [{templateName: error-rate}], args: [{name: service, value: fraud-detection}]}
        - setWeight: 50
        - pause: {duration: 1s}
        - setWeight: 100
`

const errorRateTemplate = `apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: error-rate, namespace: {{DEST}}}
spec:
  args: [{name: service}]
  metrics:
  - name: error-rate
    interval: 200ms
    count: 2
    successCondition: result < 0.05
    failureCondition: result > 0.1
    provider:
      web:
        url: {{URL}}/rate?service={{args.service}}
        jsonPath: "{$.errorRate}"
`

func productionValues(version string) string {
	return fmt.Sprintf("model:\n  version: %s\n  replicas: 10\nautoscaling:\n  enabled: false\n", version)
}

// errorRate is a web metric source whose value the test sets.
type errorRate struct{ milli atomic.Int64 }

func (e *errorRate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("service") != "fraud-detection" {
		http.Error(w, "unknown service", http.StatusNotFound)
		return
	}
	fmt.Fprintf(w, `{"errorRate": %g}`, float64(e.milli.Load())/1000)
}

// readyWatch samples the destination's ready pods throughout a rollout
// and keeps the fewest seen.
type readyWatch struct {
	mu     sync.Mutex
	fewest int
	stop   chan struct{}
	done   chan struct{}
}

func watchReady(h *harness, ns string) *readyWatch {
	w := &readyWatch{fewest: 1 << 30, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var pods corev1.PodList
			if err := h.c.List(context.Background(), &pods, client.InNamespace(ns)); err != nil {
				continue
			}
			ready := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp != nil {
					continue
				}
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
			w.mu.Lock()
			w.fewest = min(w.fewest, ready)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *readyWatch) Stop() int {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fewest
}

func (h *harness) rollout(name string) *v1alpha1.ModelRollout {
	mr := &v1alpha1.ModelRollout{}
	if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: name}, mr); err != nil {
		return nil
	}
	return mr
}

func (h *harness) createYAML(doc string, obj client.Object) {
	h.t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		h.t.Fatalf("parse: %v", err)
	}
	if err := h.c.Create(context.Background(), obj); err != nil {
		h.t.Fatalf("create: %v", err)
	}
}

// TestCanaryRollout is the whole loop on the embedded control plane:
// v2.3.1 at 10 replicas → Git names v2.3.2 → 1 canary + 9 stable →
// analysis passes → 5 + 5 → pause → 10 of v2.3.2 and no canary, never
// fewer than 10 − maxUnavailable (25%) ready pods. Then v2.3.3 fails its
// analysis at 10%: 10 pods of v2.3.2 again, the canary gone, a revert
// commit on the tracked branch, the app Synced to it and Healthy, the
// registry alias on v2.3.2, and no retry after a controller restart. The
// repository is private (privateRemote): the revert is pushed with its
// Secret's credentials, nothing of the host's Git configuration.
func TestCanaryRollout(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	o := controller.Options{PollInterval: time.Minute, Registry: reg.Client}
	h := startOpts(t, o)
	metric := &errorRate{}
	metric.milli.Store(10)
	srv := httptest.NewServer(metric)
	defer srv.Close()

	repo := modelRepo(t)
	gittest.Git(t, repo.Dir, "config", "receive.denyCurrentBranch", "updateInstead")
	repo.Write(map[string]string{
		"models/fraud-detection/mlcd.yaml":              canaryPolicy,
		"models/fraud-detection/values-production.yaml": productionValues("v2.3.1"),
	}).Commit("fraud-detection v2.3.1 at 10 replicas")
	for _, v := range []string{"v2.3.1", "v2.3.2", "v2.3.3"} {
		registrytest.Register(t, reg.Client, "fraud-detection", v, map[string]float64{"auc": 0.95})
	}
	dest := h.ns + "-canary"
	h.namespaceGone(t, dest)
	h.create(app, map[string]string{"{{NAME}}": "fd-canary", "{{REPO}}": privateRemote(t, h, repo), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitSynced("fd-canary", "")
	h.eventually(60*time.Second, "10 stable pods available", func() (bool, string) {
		d := h.deployment(dest, "fraud-detection")
		return d != nil && d.Status.AvailableReplicas == 10, ""
	})
	h.createYAML(strings.NewReplacer("{{DEST}}", dest, "{{URL}}", srv.URL).Replace(errorRateTemplate), &v1alpha1.AnalysisTemplate{})

	// v2.3.2 rolls out step by step.
	watch := watchReady(h, dest)
	bump := repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": productionValues("v2.3.2")}).Commit("promote fraud-detection v2.3.2 to production")
	h.refresh("fd-canary")
	h.eventually(60*time.Second, "1 canary + 9 stable", func() (bool, string) {
		c, s := h.deployment(dest, "fraud-detection-canary"), h.deployment(dest, "fraud-detection")
		if c == nil || s == nil {
			return false, "no canary"
		}
		return *c.Spec.Replicas == 1 && c.Status.AvailableReplicas == 1 && *s.Spec.Replicas == 9 && strings.HasSuffix(image(s), ":v2.3.1") && strings.HasSuffix(image(c), ":v2.3.2"),
			fmt.Sprintf("canary %d/%d stable %d/%d", *c.Spec.Replicas, c.Status.AvailableReplicas, *s.Spec.Replicas, s.Status.AvailableReplicas)
	})
	st := h.app("fd-canary").Status
	if st.Sync.Status != v1alpha1.SyncStatusOutOfSync || !hasCondition(st.Conditions, v1alpha1.ConditionRolloutProgressing) {
		t.Errorf("while rolling out: sync %s conditions %v; want OutOfSync with %s", st.Sync.Status, st.Conditions, v1alpha1.ConditionRolloutProgressing)
	}
	h.eventually(60*time.Second, "5 canary + 5 stable", func() (bool, string) {
		c, s := h.deployment(dest, "fraud-detection-canary"), h.deployment(dest, "fraud-detection")
		return c != nil && s != nil && *c.Spec.Replicas == 5 && *s.Spec.Replicas == 5, ""
	})
	h.eventually(90*time.Second, "10 of v2.3.2 and no canary", func() (bool, string) {
		s := h.deployment(dest, "fraud-detection")
		return h.deployment(dest, "fraud-detection-canary") == nil && s != nil && strings.HasSuffix(image(s), ":v2.3.2") && s.Status.AvailableReplicas == 10 && s.Status.UpdatedReplicas == 10, ""
	})
	h.waitSynced("fd-canary", bump)
	if fewest := watch.Stop(); fewest < 8 {
		t.Errorf("%d ready pods at the worst moment; want at least 10 - 25%% = 8", fewest)
	}
	mr := h.rollout("fd-canary")
	if mr == nil || mr.Status.Phase != "Healthy" || len(mr.Status.Analysis) != 1 || mr.Status.Analysis[0].Phase != "Successful" || len(mr.Status.Analysis[0].Metrics[0].Measurements) != 2 {
		t.Fatalf("rollout after success = %+v", mr)
	}
	h.eventually(20*time.Second, "alias production on v2.3.2", func() (bool, string) {
		got, err := reg.Client.GetVersionByAlias(context.Background(), "fraud-detection", "production")
		return err == nil && got.Version == "2", fmt.Sprint(got, err)
	})

	// v2.3.3 fails its analysis at 10%.
	metric.milli.Store(200)
	watch = watchReady(h, dest)
	failedCommit := repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": productionValues("v2.3.3")}).Commit("promote fraud-detection v2.3.3 to production")
	h.refresh("fd-canary")
	var failedAt time.Time
	h.eventually(60*time.Second, "rollout of v2.3.3 aborted", func() (bool, string) {
		mr := h.rollout("fd-canary")
		if mr != nil && mr.Spec.CanaryVersion == "v2.3.3" && mr.Status.Phase == "Degraded" {
			failedAt = mr.Status.CompletedAt.Time
			return true, ""
		}
		return false, fmt.Sprint(mr)
	})
	var revert string
	h.eventually(60*time.Second, "a revert commit on main", func() (bool, string) {
		msg := gittest.Git(t, repo.Dir, "log", "-1", "--format=%H %B", "main")
		if strings.Contains(msg, "This reverts commit") && strings.Contains(msg, "error-rate") {
			revert = strings.Fields(msg)[0]
			return true, ""
		}
		return false, msg
	})
	h.eventually(10*time.Second, "the revert recorded on the rollout", func() (bool, string) {
		mr = h.rollout("fd-canary")
		return mr.Status.RevertCommit == revert, mr.Status.RevertCommit
	})
	ct := strings.TrimSpace(gittest.Git(t, repo.Dir, "log", "-1", "--format=%ct", revert))
	committed, _ := strconv.ParseInt(ct, 10, 64)
	if took := time.Unix(committed, 0).Sub(failedAt.Truncate(time.Second)); took > 60*time.Second {
		t.Errorf("revert committed %s after the failure; want within 60s", took)
	} else {
		t.Logf("revert committed %s after the failed analysis (commit times have 1s resolution)", took)
	}
	h.waitSynced("fd-canary", revert)
	// The failed commit's note says its rollout was aborted and reverted;
	// the commit that deployed what runs (v2.3.2's: the revert changed
	// nothing the abort had not restored) says it runs healthy.
	h.eventually(30*time.Second, "the notes of the failed and the running commit", func() (bool, string) {
		failed, _ := exec.Command("git", "-C", repo.Dir, "notes", "--ref=mlcd", "show", failedCommit).CombinedOutput()
		running, _ := exec.Command("git", "-C", repo.Dir, "notes", "--ref=mlcd", "show", bump).CombinedOutput()
		return strings.Contains(string(failed), "version: v2.3.3 | health: Degraded | rollout: aborted, reverted by "+revert[:7]) &&
			strings.Contains(string(running), "version: v2.3.2 | sync: Synced | health: Healthy"), string(failed) + " / " + string(running)
	})
	s := h.deployment(dest, "fraud-detection")
	if !strings.HasSuffix(image(s), ":v2.3.2") || *s.Spec.Replicas != 10 || h.deployment(dest, "fraud-detection-canary") != nil {
		t.Errorf("after the abort: %s × %d, canary %v", image(s), *s.Spec.Replicas, h.deployment(dest, "fraud-detection-canary") != nil)
	}
	if fewest := watch.Stop(); fewest < 8 {
		t.Errorf("%d ready pods at the worst moment of the abort; want at least 8", fewest)
	}
	got, err := reg.Client.GetVersionByAlias(context.Background(), "fraud-detection", "production")
	if err != nil || got.Version != "2" {
		t.Errorf("alias production = %v, %v; want version 2 (v2.3.2)", got, err)
	}
	if !strings.Contains(strings.Join(h.events("fd-canary"), "\n"), "RolloutAborted") {
		t.Errorf("no RolloutAborted event: %v", h.events("fd-canary"))
	}
}

func hasCondition(conds []v1alpha1.ApplicationCondition, typ string) bool {
	for _, c := range conds {
		if c.Type == typ {
			return true
		}
	}
	return false
}

var _ = metav1.Now

// TestRolloutSurvivesRestarts kills the controller at every step: the
// rollout resumes where it was (its state is the ModelRollout), there is
// never more than one canary, never fewer ready pods than allowed; an
// aborted rollout (onFailure: abort) is not retried by a new controller.
func TestRolloutSurvivesRestarts(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startOpts(t, controller.Options{PollInterval: time.Minute, Registry: reg.Client})
	values := func(v string) string {
		return fmt.Sprintf("model:\n  version: %s\n  replicas: 4\nautoscaling:\n  enabled: false\n", v)
	}
	repo := modelRepo(t)
	repo.Write(map[string]string{
		"models/fraud-detection/values-production.yaml": values("v2.3.1"),
		"models/fraud-detection/mlcd.yaml": `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: production, valuesFile: values-production.yaml, application: fd-restart}
  rollout:
    production:
      onFailure: abort
      canary:
        steps:
        - setWeight: 25
        - pause: {}
        - setWeight: 50
        - pause: {}
        - setWeight: 100
`,
	}).Commit("v2.3.1")
	for _, v := range []string{"v2.3.1", "v2.3.2", "v2.3.3"} {
		registrytest.Register(t, reg.Client, "fraud-detection", v, map[string]float64{"auc": 0.95})
	}
	dest := h.ns + "-restart"
	h.namespaceGone(t, dest)
	h.create(app, map[string]string{"{{NAME}}": "fd-restart", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitSynced("fd-restart", "")
	h.eventually(60*time.Second, "4 pods available", func() (bool, string) {
		d := h.deployment(dest, "fraud-detection")
		return d != nil && d.Status.AvailableReplicas == 4, ""
	})
	watch := watchReady(h, dest)
	canaries := func() int {
		var list appsv1.DeploymentList
		h.c.List(context.Background(), &list, client.InNamespace(dest))
		n := 0
		for _, d := range list.Items {
			if strings.HasSuffix(d.Name, "-canary") {
				n++
			}
		}
		return n
	}
	act := func(action string) {
		mr := h.rollout("fd-restart")
		before := mr.DeepCopy()
		if mr.Annotations == nil {
			mr.Annotations = map[string]string{}
		}
		mr.Annotations[v1alpha1.RolloutActionAnnotation] = action
		if err := h.c.Patch(context.Background(), mr, client.MergeFrom(before)); err != nil {
			t.Fatal(err)
		}
	}
	pausedAt := func(step int, canary, stable int32) {
		t.Helper()
		h.eventually(60*time.Second, fmt.Sprintf("paused at step %d with %d canary + %d stable", step, canary, stable), func() (bool, string) {
			mr := h.rollout("fd-restart")
			c, s := h.deployment(dest, "fraud-detection-canary"), h.deployment(dest, "fraud-detection")
			if mr == nil || c == nil || s == nil {
				return false, "not started"
			}
			if n := canaries(); n > 1 {
				t.Fatalf("%d canary Deployments", n)
			}
			return mr.Status.Phase == "Paused" && mr.Status.CurrentStepIndex == step && *c.Spec.Replicas == canary && c.Status.AvailableReplicas == canary && *s.Spec.Replicas == stable,
				fmt.Sprintf("%s step %d canary %d stable %d", mr.Status.Phase, mr.Status.CurrentStepIndex, *c.Spec.Replicas, *s.Spec.Replicas)
		})
	}
	repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": values("v2.3.2")}).Commit("v2.3.2")
	h.refresh("fd-restart")
	// Killed right after the rollout started (mid-scaling).
	h.eventually(30*time.Second, "rollout started", func() (bool, string) { return h.rollout("fd-restart") != nil, "" })
	h.restart()
	pausedAt(1, 1, 3)
	h.restart()
	time.Sleep(2 * time.Second)
	pausedAt(1, 1, 3) // a new controller does not move a paused rollout
	act("promote")
	pausedAt(3, 2, 2)
	h.restart()
	pausedAt(3, 2, 2)
	act("promote")
	h.eventually(60*time.Second, "v2.3.2 at 4 replicas, no canary", func() (bool, string) {
		s := h.deployment(dest, "fraud-detection")
		return canaries() == 0 && strings.HasSuffix(image(s), ":v2.3.2") && s.Status.AvailableReplicas == 4 && s.Status.UpdatedReplicas == 4, ""
	})
	h.waitSynced("fd-restart", "")

	// v2.3.3 aborted by a person: not retried by the next controller.
	repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": values("v2.3.3")}).Commit("v2.3.3")
	h.refresh("fd-restart")
	pausedAt(1, 1, 3)
	h.restart()
	act("abort")
	h.eventually(60*time.Second, "aborted: 4 of v2.3.2, no canary", func() (bool, string) {
		mr, s := h.rollout("fd-restart"), h.deployment(dest, "fraud-detection")
		return mr.Status.Phase == "Degraded" && canaries() == 0 && s.Status.AvailableReplicas == 4 && *s.Spec.Replicas == 4, ""
	})
	h.restart()
	time.Sleep(3 * time.Second)
	s := h.deployment(dest, "fraud-detection")
	if canaries() != 0 || !strings.HasSuffix(image(s), ":v2.3.2") || h.rollout("fd-restart").Status.Phase != "Degraded" {
		t.Fatalf("after a restart the aborted version came back: %s, %d canaries", image(s), canaries())
	}
	st := h.app("fd-restart").Status
	if st.Health.Status != v1alpha1.HealthDegraded || st.Sync.Status != v1alpha1.SyncStatusOutOfSync || !hasCondition(st.Conditions, v1alpha1.ConditionRolloutAborted) {
		t.Errorf("app after the abort: %s/%s %v", st.Sync.Status, st.Health.Status, st.Conditions)
	}
	if fewest := watch.Stop(); fewest < 3 {
		t.Errorf("%d ready pods at the worst moment; want at least 4 - 25%% = 3", fewest)
	}
}

// TestCanaryGPUCapacity: on the GPU node (4 nvidia.com/gpu) a stable
// version holds all 4; a canary pod needing one more pauses the rollout
// with GPUCapacity naming the shortfall and no Pending pod; with
// gpuStrategy: replace the stable side frees them and the rollout
// completes, keeping replicas − maxUnavailable pods ready.
func TestCanaryGPUCapacity(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startOpts(t, controller.Options{PollInterval: time.Minute, Registry: reg.Client})
	values := func(v string) string {
		return fmt.Sprintf("model:\n  version: %s\n  replicas: 4\nautoscaling:\n  enabled: false\ngpu: 1\nresources:\n  requests: {cpu: 10m, memory: 10Mi}\n", v)
	}
	policy := func(strategy string) string {
		return `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: production, valuesFile: values-production.yaml, application: fd-gpu}
  rollout:
    production:
      canary:
        gpuStrategy: ` + strategy + `
        steps:
        - setWeight: 25
        - setWeight: 100
`
	}
	repo := modelRepo(t)
	repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": values("v2.3.1"), "models/fraud-detection/mlcd.yaml": policy("pause")}).Commit("v2.3.1 on 4 GPUs")
	for _, v := range []string{"v2.3.1", "v2.3.2", "v2.3.3"} {
		registrytest.Register(t, reg.Client, "fraud-detection", v, map[string]float64{"auc": 0.95})
	}
	dest := h.ns + "-gpu"
	h.namespaceGone(t, dest)
	h.create(app, map[string]string{"{{NAME}}": "fd-gpu", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.eventually(60*time.Second, "4 GPU pods available", func() (bool, string) {
		d := h.deployment(dest, "fraud-detection")
		return d != nil && d.Status.AvailableReplicas == 4, ""
	})
	h.waitSynced("fd-gpu", "")

	repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": values("v2.3.2")}).Commit("v2.3.2")
	h.refresh("fd-gpu")
	h.eventually(60*time.Second, "paused with GPUCapacity", func() (bool, string) {
		mr := h.rollout("fd-gpu")
		return mr != nil && mr.Status.PauseReason == "GPUCapacity" && strings.Contains(mr.Status.Message, "short by 1"), fmt.Sprint(mr)
	})
	time.Sleep(2 * time.Second)
	if c := h.deployment(dest, "fraud-detection-canary"); c != nil && *c.Spec.Replicas != 0 {
		t.Fatalf("canary scaled to %d without GPUs for it", *c.Spec.Replicas)
	}
	var pods corev1.PodList
	h.c.List(context.Background(), &pods, client.InNamespace(dest))
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodPending {
			t.Fatalf("pod %s left Pending", p.Name)
		}
	}
	if st := h.app("fd-gpu").Status; st.Health.Status != v1alpha1.HealthSuspended || !strings.Contains(fmt.Sprint(st.Conditions), "GPUCapacity") {
		t.Errorf("app while GPU-paused: %s %v", st.Health.Status, st.Conditions)
	}

	watch := watchReady(h, dest)
	repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": values("v2.3.3"), "models/fraud-detection/mlcd.yaml": policy("replace")}).Commit("v2.3.3, replacing stable GPU pods")
	h.refresh("fd-gpu")
	h.eventually(90*time.Second, "v2.3.3 on 4 GPUs, no canary", func() (bool, string) {
		s, c := h.deployment(dest, "fraud-detection"), h.deployment(dest, "fraud-detection-canary")
		mr := h.rollout("fd-gpu")
		return c == nil && strings.HasSuffix(image(s), ":v2.3.3") && s.Status.AvailableReplicas == 4 && s.Status.UpdatedReplicas == 4,
			fmt.Sprintf("stable %s %d/%d canary %v; %s %s", image(s), s.Status.AvailableReplicas, *s.Spec.Replicas, c != nil, mr.Status.Phase, mr.Status.Message)
	})
	h.waitSynced("fd-gpu", "")
	if fewest := watch.Stop(); fewest < 3 {
		t.Errorf("%d ready pods at the worst moment; want at least 4 - 25%% = 3", fewest)
	}
}
