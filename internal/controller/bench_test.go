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

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
)

// writeCounter counts the controller's API requests, and among them the
// writes: every request but reads and dry runs.
type writeCounter struct {
	next     http.RoundTripper
	requests atomic.Int64
	writes   atomic.Int64
}

func (w *writeCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	w.requests.Add(1)
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

// teamNamespace spreads the apps over destination namespaces of 50, as
// teams own their models. (Kubernetes' own controllers list a namespace's
// pods on every ReplicaSet and Service sync, so 1,000 apps in one namespace
// mostly measures kube-controller-manager, not mlcd.)
func teamNamespace(ns string, i int) string {
	return fmt.Sprintf("%s-t%02d", ns, i/50)
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
		Options:  controller.Options{PollInterval: 10 * time.Minute, ControllerNamespace: ns},
		CacheDir: b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	cl, _ := client.New(env.Config, client.Options{Scheme: controller.Scheme()})

	reconciles0, reconcileSeconds0 := reconcileTime(b)
	allocs0, allocSeconds0 := clusterIPAllocations(b, env.Config)
	b.ResetTimer()
	start := time.Now()
	// Eight writers, as a kubectl apply of a directory or an app-of-apps
	// would create them; one sequential writer alone takes tens of
	// seconds on a busy API server.
	var g errgroup.Group
	g.SetLimit(8)
	for i := 0; i < n; i++ {
		g.Go(func() error {
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
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`, i, ns, repo.URL(), i, teamNamespace(ns, i))
			a := &v1alpha1.Application{}
			if err := yaml.Unmarshal([]byte(doc), a); err != nil {
				return err
			}
			return cl.Create(ctx, a)
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	created := time.Since(start)
	// Progress is read from the controller's own cache: polling the API
	// server with a full List would add load the controller does not make.
	reader := c.Manager.GetClient()
	var peak float64
	var allSynced time.Duration
	for {
		var list v1alpha1.ApplicationList
		if err := reader.List(ctx, &list, client.InNamespace(ns)); err != nil {
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
		time.Sleep(time.Second)
	}
	cold := time.Since(start)
	coldRequests := counter.requests.Load()
	reconciles, reconcileSeconds := reconcileTime(b)
	reconciles, reconcileSeconds = reconciles-reconciles0, reconcileSeconds-reconcileSeconds0
	allocs, allocSeconds := clusterIPAllocations(b, env.Config)
	allocs, allocSeconds = allocs-allocs0, allocSeconds-allocSeconds0
	b.StopTimer()

	// At rest: nothing changed in Git or the cluster.
	time.Sleep(3 * time.Second)
	renders, writes := c.Reconciler.Renders(), counter.writes.Load()
	// Force a full level-based pass over every app, as a resync would.
	for i := 0; i < n; i++ {
		req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("model-%d", i)}}
		if _, err := c.Reconciler.Reconcile(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	restRenders, restWrites := c.Reconciler.Renders()-renders, counter.writes.Load()-writes
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(cold.Seconds(), "cold-s")
	b.ReportMetric(allSynced.Seconds(), "synced-s")
	b.ReportMetric(peak, "peak-rss-MiB")
	b.ReportMetric(float64(restRenders), "renders-at-rest")
	b.ReportMetric(float64(restWrites), "writes-at-rest")
	b.Logf("%d apps created in %s; the controller made %d API requests (%.1f per app) until all were Healthy", n, created.Round(100*time.Millisecond), coldRequests, float64(coldRequests)/float64(n))
	// kube-apiserver allocates ClusterIPs one at a time (a mutex held
	// across the IPAddress write), so this is a floor under the wall time.
	b.Logf("kube-apiserver spent %.1f s allocating %.0f ClusterIPs one at a time (%.0f ms each)", allocSeconds, allocs, 1000*allocSeconds/max(allocs, 1))
	b.Logf("%d reconciles, %.0f ms each on average", reconciles, 1000*reconcileSeconds/float64(max(reconciles, 1)))
	b.Logf("%d apps: all Synced after %s, all Synced+Healthy (pods Ready) after %s, peak RSS %.0f MiB (test process incl. controller), heap %.0f MiB; at rest after a full resync: %d renders, %d API writes",
		n, allSynced.Round(100*time.Millisecond), cold.Round(100*time.Millisecond), peak, float64(ms.HeapAlloc)/(1<<20), restRenders, restWrites)
	if restRenders != 0 || restWrites != 0 {
		b.Errorf("at rest: %d renders and %d writes, want 0 and 0", restRenders, restWrites)
	}
}

// reconcileTime sums controller-runtime's reconcile-time histogram.
func reconcileTime(b *testing.B) (uint64, float64) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n uint64
	var sum float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_time_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return n, sum
}

// clusterIPAllocations reads kube-apiserver's ClusterIP allocation count
// and total seconds from its metrics.
func clusterIPAllocations(b *testing.B, cfg *rest.Config) (count, seconds float64) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		name, rest, _ := strings.Cut(line, "{")
		_, value, _ := strings.Cut(rest, "} ")
		v, _ := strconv.ParseFloat(value, 64)
		switch name {
		case "kube_apiserver_clusterip_allocator_allocation_duration_seconds_count":
			count += v
		case "kube_apiserver_clusterip_allocator_allocation_duration_seconds_sum":
			seconds += v
		}
	}
	return count, seconds
}
