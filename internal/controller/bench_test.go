package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
)

// writeCounter counts API writes: every request but reads and dry runs.
type writeCounter struct {
	next   http.RoundTripper
	writes atomic.Int64
}

func (w *writeCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet && !strings.Contains(r.URL.RawQuery, "dryRun=All") {
		w.writes.Add(1)
	}
	return w.next.RoundTrip(r)
}

func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkSyncApps syncs N generated Helm model apps from one repository
// cold, until every app is Synced and Healthy, then leaves them at rest and
// counts renders and API writes. Run with
//
//	go test -run '^$' -bench SyncApps -benchtime 1x ./internal/controller/
func BenchmarkSyncApps(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchSync(b, n)
			}
		})
	}
}

func benchSync(b *testing.B, n int) {
	env := clustertest.Get(b)
	ns := env.Namespace(b)
	repo := modelRepo(b)
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	counter := &writeCounter{}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := controller.New(ctx, cfg, controller.ManagerOptions{
		Options:  controller.Options{PollInterval: 10 * time.Minute, AppNamespaces: []string{ns}, MaxConcurrentReconciles: 16},
		CacheDir: b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	cl, _ := client.New(env.Config, client.Options{Scheme: controller.Scheme()})

	b.ResetTimer()
	start := time.Now()
	for i := 0; i < n; i++ {
		doc := fmt.Sprintf(`
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: model-%d, namespace: %s}
spec:
  project: default
  source:
    repoURL: %s
    targetRevision: main
    path: models/fraud-detection
    helm:
      valueFiles: [values-production.yaml]
      parameters:
      - {name: model.name, value: model-%d}
      - {name: model.replicas, value: "1"}
      - {name: autoscaling.minReplicas, value: "1"}
      - {name: resources.requests.cpu, value: 10m}
      - {name: resources.requests.memory, value: 16Mi}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
`, i, ns, repo.URL(), i, ns)
		a := &v1alpha1.Application{}
		if err := yaml.Unmarshal([]byte(doc), a); err != nil {
			b.Fatal(err)
		}
		if err := cl.Create(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
	var peak float64
	var allSynced time.Duration
	for {
		var list v1alpha1.ApplicationList
		if err := cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		ready, synced := 0, 0
		for _, a := range list.Items {
			if a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
				synced++
				if a.Status.Health.Status == v1alpha1.HealthHealthy {
					ready++
				}
			}
		}
		if synced == n && allSynced == 0 {
			allSynced = time.Since(start)
		}
		if r := rssMiB(); r > peak {
			peak = r
		}
		if ready == n {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("only %d of %d apps Synced+Healthy after 10m", ready, n)
		}
		time.Sleep(2 * time.Second)
	}
	cold := time.Since(start)
	b.StopTimer()

	// At rest: nothing changed in Git or the cluster.
	time.Sleep(3 * time.Second)
	renders, writes := c.Reconciler.Renderer.Renders(), counter.writes.Load()
	// Force a full level-based pass over every app, as a resync would.
	for i := 0; i < n; i++ {
		req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("model-%d", i)}}
		if _, err := c.Reconciler.Reconcile(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	restRenders, restWrites := c.Reconciler.Renderer.Renders()-renders, counter.writes.Load()-writes
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(cold.Seconds(), "cold-s")
	b.ReportMetric(allSynced.Seconds(), "synced-s")
	b.ReportMetric(peak, "peak-rss-MiB")
	b.ReportMetric(float64(restRenders), "renders-at-rest")
	b.ReportMetric(float64(restWrites), "writes-at-rest")
	b.Logf("%d apps: all Synced after %s, all Synced+Healthy (pods Ready) after %s, peak RSS %.0f MiB (test process incl. controller), heap %.0f MiB; at rest after a full resync: %d renders, %d API writes",
		n, allSynced.Round(100*time.Millisecond), cold.Round(100*time.Millisecond), peak, float64(ms.HeapAlloc)/(1<<20), restRenders, restWrites)
	if restRenders != 0 || restWrites != 0 {
		b.Errorf("at rest: %d renders and %d writes, want 0 and 0", restRenders, restWrites)
	}
}
