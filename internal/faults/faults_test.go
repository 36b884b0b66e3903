package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/localcluster"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// rounds is how many kill rounds TestKilledMidSync runs (MLCD_FAULT_ROUNDS
// overrides the 20).
func rounds() int {
	if n, err := strconv.Atoi(os.Getenv("MLCD_FAULT_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// convergeBound is the time every app must reach the head revision after
// a fault clears: the poll interval (3 s), a backoff step and the sync of
// 50 small apps on the 2-core reference machine.
const convergeBound = 60 * time.Second

// TestKilledMidSync: the controller is SIGKILLed at a random point of a
// 50-app sync (each generation changes every app's data and replaces one
// object per app, so syncs apply and prune), 20 rounds. After each kill no
// object desired in every revision is missing and no bystander changed;
// in the end every app converges to the head, its inventory exactly that
// generation's objects.
func TestKilledMidSync(t *testing.T) {
	w := newWorld(t, 50)
	w.start()
	w.converge(w.repo.Head(), convergeBound)
	var sha string
	n := rounds()
	for g := 1; g <= n; g++ {
		sha = w.commitGeneration(g)
		w.start()
		// A random point: mid-fetch, mid-apply, mid-prune or mid-status-write.
		time.Sleep(time.Duration(200+rand.IntN(2500)) * time.Millisecond)
		w.kill()
		if lost := w.stableLost(); len(lost) > 0 {
			t.Fatalf("round %d: killed controller left %d desired objects deleted: %v", g, len(lost), first(lost, 5))
		}
		w.checkBystanders()
	}
	w.start()
	took := w.converge(sha, convergeBound)
	lost, extra := w.checkInventory(n)
	w.checkBystanders()
	t.Logf("fault: SIGKILL mid-sync; rounds %d; objects lost %d; wrongly deleted 0 (checked after every kill); stale left %d; converged in %s", n, lost, extra, took.Round(time.Millisecond))
}

// TestGitOutage: the Git server goes down, then answers 500s, then 10 s
// per request; meanwhile apps keep what runs (nothing pruned, nothing
// changed), say the repository is unreachable, and the controller does
// not pile requests up; back to normal, they converge to a commit made
// during the outage.
func TestGitOutage(t *testing.T) {
	w := newWorld(t, 10)
	w.start()
	w.converge(w.repo.Head(), convergeBound)
	for _, mode := range []string{"down", "500", "slow"} {
		w.git.set(mode)
		sha := w.commitGeneration(map[string]int{"down": 1, "500": 2, "slow": 3}[mode])
		peakBefore := w.git.peak.Load()
		w.git.peak.Store(0)
		began := time.Now()
		deadline := time.Now().Add(20 * time.Second)
		told := false
		for time.Now().Before(deadline) && !told {
			told = true
			for i := range w.apps {
				if !hasCondition(w.app(i), v1alpha1.ConditionComparisonError, "") {
					told = false
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
		if mode != "slow" && !told {
			t.Errorf("Git %s: not every app says so within 20 s (e.g. %+v)", mode, w.app(0).Status.Conditions)
		}
		if lost := w.stableLost(); len(lost) > 0 {
			t.Fatalf("Git %s: %d objects deleted: %v", mode, len(lost), first(lost, 5))
		}
		for i := range w.apps {
			if a := w.app(i); a.Status.Sync.Revision == sha {
				t.Errorf("Git %s: app-%d claims %.7s, which it cannot have fetched", mode, i, sha)
			}
		}
		// One repository: fetches are shared, so requests in flight stay
		// few however many apps wait on it.
		if peak := w.git.peak.Load(); peak > 8 {
			t.Errorf("Git %s: %d requests in flight at once (before: %d)", mode, peak, peakBefore)
		}
		lasted := time.Since(began)
		w.git.set("")
		took := w.converge(sha, convergeBound)
		w.checkBystanders()
		lost, extra := w.checkInventory(map[string]int{"down": 1, "500": 2, "slow": 3}[mode])
		t.Logf("fault: Git %s for %s; objects lost %d; stale left %d; converged %s after it cleared; peak requests in flight %d", mode, lasted.Round(time.Second), lost, extra, took.Round(time.Millisecond), w.git.peak.Load())
	}
}

// TestForcePushAndDeletedTag: a force-push that drops the synced commit
// moves the apps to the new head (the dropped commit's objects pruned, the
// rest kept); an app tracking a tag that is deleted keeps what runs and
// says the revision is gone.
func TestForcePushAndDeletedTag(t *testing.T) {
	w := newWorld(t, 5)
	w.start()
	w.converge(w.repo.Head(), convergeBound)
	dropped := w.commitGeneration(1)
	w.converge(dropped, convergeBound)
	gittest.Git(t, w.repo.Dir, "reset", "-q", "--hard", "HEAD~1")
	head := w.commitGeneration(2)
	took := w.converge(head, convergeBound)
	if lost, extra := w.checkInventory(2); lost+extra > 0 {
		t.Fatalf("after the force-push: %d lost, %d stale", lost, extra)
	}
	w.checkBystanders()
	t.Logf("fault: force-push dropping the synced commit; objects lost 0; converged in %s", took.Round(time.Millisecond))

	// A tag.
	w.repo.Tag("v1")
	w.patchAll(func(a *v1alpha1.Application) { a.Spec.Source.TargetRevision = "v1" })
	w.converge(head, convergeBound)
	gittest.Git(t, w.repo.Dir, "tag", "-d", "v1")
	for i := range w.apps {
		w.refresh(i)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !hasCondition(w.app(0), v1alpha1.ConditionComparisonError, "v1") {
		if time.Now().After(deadline) {
			t.Fatalf("a deleted tag is not reported: %+v", w.app(0).Status.Conditions)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if lost := w.stableLost(); len(lost) > 0 {
		t.Fatalf("deleted tag: %d objects deleted", len(lost))
	}
	if lost, _ := w.checkInventory(2); lost > 0 {
		t.Fatalf("deleted tag: %d inventory objects lost", lost)
	}
	if a := w.app(0); a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
		t.Errorf("an app whose tag is gone says Synced")
	}
}

// TestConcurrentCommits: 10 commits in 2 s to every app's path: each app
// ends at the last, and no intermediate revision is in its history twice.
func TestConcurrentCommits(t *testing.T) {
	w := newWorld(t, 5)
	w.start()
	w.converge(w.repo.Head(), convergeBound)
	var sha string
	for g := 1; g <= 10; g++ {
		sha = w.commitGeneration(g)
		for i := range w.apps {
			w.refresh(i) // as a webhook would, per push
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := w.converge(sha, convergeBound)
	if lost, extra := w.checkInventory(10); lost+extra > 0 {
		t.Fatalf("%d lost, %d stale", lost, extra)
	}
	for i := range w.apps {
		seen := map[string]int{}
		for _, h := range w.app(i).Status.History {
			seen[h.Revision]++
			if seen[h.Revision] > 1 {
				t.Errorf("app-%d applied %.7s twice: %v", i, h.Revision, w.app(i).Status.History)
			}
		}
	}
	w.checkBystanders()
	t.Logf("fault: 10 commits in 2 s; objects lost 0; converged to the last in %s", took.Round(time.Millisecond))
}

func hasCondition(a *v1alpha1.Application, typ, contains string) bool {
	for _, c := range a.Status.Conditions {
		if c.Type == typ && strings.Contains(c.Message, contains) {
			return true
		}
	}
	return false
}

// TestPartialApply: the API server refuses one object of an app (a
// ValidatingAdmissionPolicy the test installs): the app's other objects
// are applied, the app says which object and why, and nothing is pruned.
func TestPartialApply(t *testing.T) {
	w := newWorld(t, 3)
	w.start()
	w.converge(w.repo.Head(), convergeBound)
	ctx := context.Background()
	policy := &unstructured.Unstructured{}
	yaml.Unmarshal([]byte(fmt.Sprintf(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: refuse-%[1]s}
spec:
  failurePolicy: Fail
  matchConstraints:
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %[1]s}}
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [configmaps]}]
  validations:
  - expression: "!has(object.metadata.labels) || !('refuse' in object.metadata.labels)"
    message: "ConfigMaps labelled refuse are not allowed here"
---
`, w.ns)), &policy.Object)
	binding := &unstructured.Unstructured{}
	yaml.Unmarshal([]byte(fmt.Sprintf(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: refuse-%[1]s}
spec: {policyName: refuse-%[1]s, validationActions: [Deny]}
`, w.ns)), &binding.Object)
	for _, o := range []*unstructured.Unstructured{policy, binding} {
		if err := w.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.c.Delete(context.Background(), o) })
	}
	// Wait until the policy is in force.
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: w.ns, Labels: map[string]string{"refuse": "yes"}}}
	deadline := time.Now().Add(30 * time.Second)
	for w.c.Create(ctx, probe, client.DryRunAll) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the admission policy never took effect")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Generation 1 for every app; app-0 also gets a refused ConfigMap.
	w.repo.Write(map[string]string{"apps/app-0/refused.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-0-refused, labels: {refuse: \"yes\", tier: model}}\ndata: {k: v}\n"})
	sha := w.commitGeneration(1)
	for i := range w.apps {
		w.refresh(i)
	}
	deadline = time.Now().Add(30 * time.Second)
	for !hasCondition(w.app(0), v1alpha1.ConditionSyncError, "app-0-refused") {
		if time.Now().After(deadline) {
			t.Fatalf("app-0 does not name the refused object: %+v", w.app(0).Status.Conditions)
		}
		time.Sleep(200 * time.Millisecond)
	}
	a := w.app(0)
	msg := ""
	for _, c := range a.Status.Conditions {
		if c.Type == v1alpha1.ConditionSyncError {
			msg = c.Message
		}
	}
	if !strings.Contains(msg, "ConfigMaps labelled refuse are not allowed here") {
		t.Errorf("the condition does not say why: %s", msg)
	}
	if a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
		t.Error("app-0 says Synced with an object refused")
	}
	// The rest of app-0 went (generation 1), and nothing was pruned: the
	// generation-0 object stays while the sync is incomplete.
	var cm corev1.ConfigMap
	if err := w.c.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: "app-0-stable"}, &cm); err != nil || cm.Data["generation"] != "1" {
		t.Errorf("app-0's other objects were not applied: %v %v", cm.Data, err)
	}
	if err := w.c.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: "app-0-gen-1"}, &cm); err != nil {
		t.Errorf("app-0's new object was not created: %v", err)
	}
	if err := w.c.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: "app-0-gen-0"}, &cm); err != nil {
		t.Errorf("a failed sync pruned: %v", err)
	}
	// The other apps are unaffected.
	for i := 1; i < w.apps; i++ {
		deadline := time.Now().Add(convergeBound)
		for a := w.app(i); a.Status.Sync.Revision != sha || a.Status.Sync.Status != v1alpha1.SyncStatusSynced; a = w.app(i) {
			if time.Now().After(deadline) {
				t.Fatalf("app-%d did not sync beside the refused app: %s %v", i, a.Status.Sync.Status, a.Status.Conditions)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	w.checkBystanders()
	t.Logf("fault: one object refused by admission; objects lost 0; wrongly deleted 0; the app names it: %s", msg)
}

// TestRegistryOutage: with the model registry down, then hanging, a
// gated app's new model version is not applied (the gate fails closed and
// says the registry is unreachable) while ungated apps keep syncing; back
// up, the gated app deploys the version.
func TestRegistryOutage(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95, "latency_p99_ms": 40})
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.2", map[string]float64{"auc": 0.96, "latency_p99_ms": 40})
	proxy := &faultyProxy{}
	w := newWorld(t, 5)
	w.registry = proxy.serve(t, reg.URL)
	w.repo.CopyFS(examples.MLDeployments, "ml-deployments/models/fraud-detection", "models/fraud-detection", nil)
	w.repo.CopyFS(examples.MLDeployments, "ml-deployments/base", "base", nil)
	w.repo.Remove("models/fraud-detection/mlcd.yaml")
	w.repo.Commit("a governed model")
	ctx := context.Background()
	mp := &v1alpha1.ModelPolicy{}
	yaml.Unmarshal([]byte("metadata: {name: fraud-detection}\nspec: {registeredModel: fraud-detection, environments: [{name: staging, valuesFile: values-staging.yaml, application: gated}], gates: [{metric: auc, op: '>=', value: 0.9}]}\n"), mp)
	mp.Namespace = w.ns
	if err := w.c.Create(ctx, mp); err != nil {
		t.Fatal(err)
	}
	gated := &v1alpha1.Application{}
	yaml.Unmarshal([]byte(fmt.Sprintf("metadata: {name: gated}\nspec: {project: default, source: {repoURL: %q, targetRevision: main, path: models/fraud-detection, helm: {valueFiles: [values-staging.yaml]}}, destination: {server: https://kubernetes.default.svc, namespace: %s}, syncPolicy: {automated: {prune: true, selfHeal: true}}}", w.gitURL, w.ns)), gated)
	gated.Namespace = w.ns
	if err := w.c.Create(ctx, gated); err != nil {
		t.Fatal(err)
	}
	w.extraApps = 1
	w.start()
	w.converge(w.repo.Head(), convergeBound)
	image := func() string {
		var d appsv1.Deployment
		if err := w.c.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: "fraud-detection"}, &d); err != nil {
			return err.Error()
		}
		return d.Spec.Template.Spec.Containers[0].Image
	}
	if !strings.HasSuffix(image(), ":v2.3.1") {
		t.Fatalf("gated app runs %s", image())
	}
	for g, mode := range []string{"down", "hang"} {
		proxy.set(mode)
		values := filepath.Join(w.repo.Dir, "models/fraud-detection/values-staging.yaml")
		data, _ := os.ReadFile(values)
		from, to := "version: v2.3.1", "version: v2.3.2"
		if g == 1 {
			from, to = to, from
		}
		os.WriteFile(values, []byte(strings.Replace(string(data), from, to, 1)), 0o644)
		sha := w.commitGeneration(g + 1)
		want := strings.TrimPrefix(from, "version: ")
		began := time.Now()
		for i := range w.apps {
			w.refresh(i)
		}
		w.refreshApp("gated")
		// Ungated apps sync the new generation meanwhile.
		for i := range w.apps {
			deadline := time.Now().Add(convergeBound)
			for a := w.app(i); a.Status.Sync.Revision != sha || a.Status.Sync.Status != v1alpha1.SyncStatusSynced; a = w.app(i) {
				if time.Now().After(deadline) {
					t.Fatalf("registry %s: ungated app-%d did not sync: %s %v", mode, i, a.Status.Sync.Status, a.Status.Conditions)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		// The gated app fails closed and says why.
		deadline := time.Now().Add(90 * time.Second)
		for {
			a := w.namedApp("gated")
			if hasCondition(a, v1alpha1.ConditionModelGate, "registry") || hasCondition(a, v1alpha1.ConditionComparisonError, "registry") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("registry %s: the gated app does not say the registry is unreachable: %s %+v", mode, a.Status.Sync.Status, a.Status.Conditions)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if img := image(); !strings.HasSuffix(img, ":"+want) {
			t.Fatalf("registry %s: the gated app applied %s without the registry (still want %s)", mode, img, want)
		}
		if a := w.namedApp("gated"); a.Status.Sync.Status == v1alpha1.SyncStatusSynced && a.Status.Sync.Revision == sha {
			t.Errorf("registry %s: the gated app says Synced at %.7s", mode, sha)
		}
		lasted := time.Since(began)
		proxy.set("")
		w.refreshApp("gated")
		took := w.converge(sha, convergeBound)
		wantAfter := strings.TrimPrefix(to, "version: ")
		if img := image(); !strings.HasSuffix(img, ":"+wantAfter) {
			t.Errorf("registry back: the gated app runs %s, want %s", img, wantAfter)
		}
		w.checkBystanders()
		t.Logf("fault: registry %s for %s; gated app applied nothing meanwhile; ungated apps synced; converged %s after it came back", mode, lasted.Round(time.Second), took.Round(time.Millisecond))
	}
}

// TestControlPlaneRestart: the control plane (API server, etcd, all of
// it) is SIGKILLed mid-sync and started again on the same state after
// 10 s; the controller, which kept running, converges every app to the
// head without losing or leaking an object.
func TestControlPlaneRestart(t *testing.T) {
	state := t.TempDir()
	start := func() *localcluster.Cluster {
		lc, err := localcluster.Start(context.Background(), localcluster.Options{StateDir: state, Binary: os.Getenv("MLCD_CONTROLPLANE"), StartTimeout: 5 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lc.Stop() })
		return lc
	}
	lc := start()
	cfg, err := lc.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	env := &clustertest.Env{Cluster: lc, Config: cfg, Kubeconfig: lc.Kubeconfig, Client: kubernetes.NewForConfigOrDie(cfg)}
	w := newWorldOn(t, 20, env)
	w.start()
	w.converge(w.repo.Head(), convergeBound)
	sha := w.commitGeneration(1)
	for i := range w.apps {
		w.refresh(i)
	}
	time.Sleep(time.Duration(300+rand.IntN(1000)) * time.Millisecond)
	if err := syscall.Kill(lc.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-lc.Done()
	time.Sleep(10 * time.Second)
	started := time.Now()
	start()
	took := w.converge(sha, 2*convergeBound)
	lost, extra := w.checkInventory(1)
	w.checkBystanders()
	t.Logf("fault: control plane SIGKILLed mid-sync, down 10 s; objects lost %d; stale left %d; converged %s after it was back (restart included: %s)", lost, extra, took.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
}
