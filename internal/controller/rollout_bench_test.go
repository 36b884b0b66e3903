package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"golang.org/x/sync/errgroup"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
)

// BenchmarkCanaryRollouts rolls a version bump out through N governed
// apps at once (2 replicas each: setWeight 50 → analysis → setWeight
// 100), the analysis a web metric measured every second five times. It
// reports, each beside its reference from the same run and cluster:
//
//   - bump → first ready canary pod, per app (median and worst), beside N
//     plain 1-replica Deployments created at once → Available (median:
//     the pod-start floor of this cluster under the same load);
//
//   - the analysis request rate, beside its bound N / interval (no busy
//     loop: at most one measurement per metric per interval);
//
//   - process CPU seconds per rollout step (controller + this client).
//
//     go test -run '^$' -bench CanaryRollouts -benchtime 1x ./internal/controller/
func BenchmarkCanaryRollouts(b *testing.B) {
	for _, n := range []int{100} {
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchCanary(b, n)
			}
		})
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func benchCanary(b *testing.B, n int) {
	env := clustertest.Get(b)
	ns := env.Namespace(b)
	reg := registrytest.Start(b, registry.ServerOptions{})
	for _, v := range []string{"v2.3.1", "v2.3.2"} {
		registrytest.Register(b, reg.Client, "fraud-detection", v, map[string]float64{"auc": 0.95})
	}
	var requests atomic.Int64
	var firstReq, lastReq atomic.Int64
	metric := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		now := time.Now().UnixNano()
		requests.Add(1)
		firstReq.CompareAndSwap(0, now)
		lastReq.Store(now)
		fmt.Fprint(w, `{"errorRate": 0.01}`)
	}))
	defer metric.Close()

	values := func(v string) string {
		return fmt.Sprintf("model:\n  version: %s\n  replicas: 2\nautoscaling:\n  enabled: false\nresources:\n  requests: {cpu: 10m, memory: 16Mi}\n", v)
	}
	var envs strings.Builder
	files := map[string]string{}
	for i := 0; i < n; i++ {
		fmt.Fprintf(&envs, "  - {name: env-%d, valuesFile: values-%d.yaml, application: model-%d}\n", i, i, i)
		files[fmt.Sprintf("models/fraud-detection/values-%d.yaml", i)] = values("v2.3.1")
	}
	var rollouts strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&rollouts, "    env-%d: {canary: {steps: [{setWeight: 50}, {analysis: {templates: [{templateName: error-rate}]}}, {setWeight: 100}]}}\n", i)
	}
	files["models/fraud-detection/mlcd.yaml"] = "apiVersion: mlcd.io/v1alpha1\nkind: ModelPolicy\nmetadata: {name: fraud-detection}\nspec:\n  registeredModel: fraud-detection\n  environments:\n" + envs.String() + "  rollout:\n" + rollouts.String()
	repo := modelRepo(b)
	repo.Write(files).Commit("N environments")

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := controller.New(ctx, cfg, controller.ManagerOptions{
		Options:  controller.Options{PollInterval: 10 * time.Minute, ControllerNamespace: ns, Registry: reg.Client},
		CacheDir: b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	// The benchmark's own client must not be what waits (client-go's
	// default limit is 5 requests/s).
	cl, _ := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	teams := map[string]bool{}
	for i := 0; i < n; i++ {
		team := teamNamespace(ns, i)
		if !teams[team] {
			teams[team] = true
			_ = cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: team}})
			b.Cleanup(func() {
				_ = cl.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: team}})
			})
			at := &v1alpha1.AnalysisTemplate{}
			_ = yaml.Unmarshal([]byte(fmt.Sprintf("metadata: {name: error-rate, namespace: %s}\nspec:\n  metrics:\n  - {name: error-rate, interval: 1s, count: 5, successCondition: result < 0.05, provider: {web: {url: %q, jsonPath: \"{$.errorRate}\"}}}\n", team, metric.URL)), at)
			if err := cl.Create(ctx, at); err != nil {
				b.Fatal(err)
			}
		}
		a := &v1alpha1.Application{}
		_ = yaml.Unmarshal([]byte(fmt.Sprintf(`metadata: {name: model-%d, namespace: %s}
spec:
  project: default
  source: {repoURL: %s, targetRevision: main, path: models/fraud-detection, helm: {valueFiles: [values-%d.yaml], parameters: [{name: model.name, value: model-%d}]}}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
`, i, ns, repo.URL(), i, i, team)), a)
		if err := cl.Create(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
	reader := c.Manager.GetClient()
	waitApps := func(what string, ok func(a *v1alpha1.Application) bool) {
		deadline := time.Now().Add(10 * time.Minute)
		for {
			var list v1alpha1.ApplicationList
			_ = reader.List(ctx, &list, client.InNamespace(ns))
			done := 0
			for i := range list.Items {
				if ok(&list.Items[i]) {
					done++
				}
			}
			if done == n {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d of %d after 10m", what, done, n)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	healthyAt := func(version string) func(a *v1alpha1.Application) bool {
		return func(a *v1alpha1.Application) bool {
			return a.Status.Sync.Status == v1alpha1.SyncStatusSynced && a.Status.Health.Status == v1alpha1.HealthHealthy && a.Annotations[v1alpha1.AppAnnotationVersion] == version
		}
	}
	waitApps("cold sync", healthyAt("v2.3.1"))

	// Reference: the same number of plain 1-replica Deployments created at
	// once (8 writers) in the same namespaces: how long this cluster takes
	// to start one pod for each, with nothing of mlcd in the way.
	refStart := time.Now()
	refReady := make([]time.Duration, n)
	var g errgroup.Group
	g.SetLimit(8)
	one := int32(1)
	for i := 0; i < n; i++ {
		g.Go(func() error {
			labels := map[string]string{"app": fmt.Sprintf("floor-%d", i)}
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("floor-%d", i), Namespace: teamNamespace(ns, i)}, Spec: appsv1.DeploymentSpec{
				Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "floor"}}}}}}
			return cl.Create(ctx, d)
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	for left := n; left > 0 && time.Since(refStart) < 5*time.Minute; {
		for team := range teams {
			var list appsv1.DeploymentList
			_ = cl.List(ctx, &list, client.InNamespace(team))
			for _, d := range list.Items {
				var i int
				if _, err := fmt.Sscanf(d.Name, "floor-%d", &i); err == nil && d.Status.AvailableReplicas == 1 && refReady[i] == 0 {
					refReady[i] = time.Since(refStart)
					left--
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	slices.Sort(refReady)
	floor := refReady[n/2]

	b.ResetTimer()
	cpu0 := cpuSeconds()
	bumps := map[string]string{}
	for i := 0; i < n; i++ {
		bumps[fmt.Sprintf("models/fraud-detection/values-%d.yaml", i)] = values("v2.3.2")
	}
	repo.Write(bumps).Commit("bump every environment to v2.3.2")
	start := time.Now()
	// One refresh per app, as a Git webhook sends them (16 at a time).
	var rg errgroup.Group
	rg.SetLimit(16)
	for i := 0; i < n; i++ {
		rg.Go(func() error {
			a := &v1alpha1.Application{}
			a.Namespace, a.Name = ns, fmt.Sprintf("model-%d", i)
			return cl.Patch(ctx, a, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"normal"}}}`)))
		})
	}
	if err := rg.Wait(); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	first := map[string]time.Duration{}
	started := map[string]time.Duration{}
	refreshed := time.Since(start)
	for len(first) < n && time.Since(start) < 5*time.Minute {
		var mrs v1alpha1.ModelRolloutList
		_ = reader.List(ctx, &mrs, client.InNamespace(ns))
		for _, mr := range mrs.Items {
			if _, ok := started[mr.Name]; !ok {
				started[mr.Name] = time.Since(start)
			}
		}
		for team := range teams {
			var list appsv1.DeploymentList
			_ = reader.List(ctx, &list, client.InNamespace(team))
			for _, d := range list.Items {
				if strings.HasSuffix(d.Name, "-canary") && d.Status.AvailableReplicas >= 1 {
					mu.Lock()
					if _, ok := first[d.Name]; !ok {
						first[d.Name] = time.Since(start)
					}
					mu.Unlock()
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitApps("rollouts", healthyAt("v2.3.2"))
	total := time.Since(start)
	cpu := cpuSeconds() - cpu0
	b.StopTimer()

	var times []time.Duration
	for _, d := range first {
		times = append(times, d)
	}
	slices.Sort(times)
	median, worst := times[len(times)/2], times[len(times)-1]
	var starts []time.Duration
	for _, d := range started {
		starts = append(starts, d)
	}
	slices.Sort(starts)
	b.Logf("refresh annotations written after %s; ModelRollouts created: median %s, last %s", refreshed.Round(10*time.Millisecond), starts[len(starts)/2].Round(10*time.Millisecond), starts[len(starts)-1].Round(10*time.Millisecond))
	window := time.Duration(lastReq.Load() - firstReq.Load()).Seconds()
	rate := float64(requests.Load()) / max(window, 1)
	steps := float64(n * 3)
	b.ReportMetric(median.Seconds(), "bump-to-canary-median-s")
	b.ReportMetric(worst.Seconds(), "bump-to-canary-worst-s")
	b.ReportMetric(floor.Seconds(), "pod-start-floor-s")
	b.ReportMetric(rate, "analysis-req/s")
	b.ReportMetric(1000*cpu/steps, "cpu-ms/step")
	b.Logf("%d rollouts: bump → first ready canary pod median %s (%.1f× the floor: %d plain Deployments created at once → Available, median %s, worst %s), worst %s; all at 100%% after %s",
		n, median.Round(10*time.Millisecond), median.Seconds()/floor.Seconds(), n, floor.Round(10*time.Millisecond), refReady[n-1].Round(10*time.Millisecond), worst.Round(10*time.Millisecond), total.Round(100*time.Millisecond))
	b.Logf("analysis: %d requests over %.1f s = %.0f req/s; bound %d rollouts × 1/interval = %d req/s (5 measurements each: %d expected)",
		requests.Load(), window, rate, n, n, 5*n)
	b.Logf("process CPU %.1f s for %d rollouts × 3 steps = %.0f ms per step (controller + benchmark client)", cpu, n, 1000*cpu/steps)
	if requests.Load() > int64(5*n) {
		b.Errorf("%d analysis requests for %d rollouts × count 5: measurements repeated", requests.Load(), n)
	}
}

// teamNamespace spreads the apps over destination namespaces of 50, as
// teams own their models (Kubernetes' own controllers list a namespace's
// pods on every ReplicaSet and Service sync).
func teamNamespace(ns string, i int) string {
	return fmt.Sprintf("%s-t%02d", ns, i/50)
}
