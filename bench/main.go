// Command bench measures mlcd against the apply floor on one fresh
// embedded cluster: N generated Helm model apps (Deployment + Service +
// HPA each, over team namespaces of 50, from one Git repository), first
// applied by plain client-go server-side apply at full parallelism (the
// floor: no Git, no render, no diff), then, in other namespaces, synced by
// mlcd's controller from Applications. Each contender has two clocks —
// Synced (every object applied; for mlcd every app's status Synced) and
// Healthy (every Deployment Available; for mlcd every app Healthy) — and
// mlcd's figures are given as ratios to the floor of the same run. Then, at
// rest, a forced resync must write and render nothing.
//
//	go run ./bench -n 100,1000 [-json bench.json]
//
// docs/performance.md explains the figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster"
)

// loopMax is the largest N the helm|kubectl loop runs for.
var loopMax = flag.Int("loop-max", 100, "run the helm template | kubectl apply loop for N up to this")

// concurrency is the controller's worker count in every phase.
var concurrency = flag.Int("concurrency", controller.DefaultConcurrency, "the controller's concurrent reconciles (mlcd controller --concurrency)")

// pollEvery is the poll interval of the polling-only part of P2, which
// measures commit → live without webhooks against it.
var pollEvery = flag.Duration("poll", 10*time.Second, "the poll interval of the polling-only part of P2 (commit → live ≤ poll + 1 s, the controller restarted with it); 0 skips it")

// Result is one N's figures.
type Result struct {
	Apps              int     `json:"apps"`
	FloorSyncedS      float64 `json:"floorSyncedSeconds"`
	FloorHealthyS     float64 `json:"floorHealthySeconds"`
	MlcdSyncedS       float64 `json:"mlcdSyncedSeconds"`
	MlcdHealthyS      float64 `json:"mlcdHealthySeconds"`
	SyncedRatio       float64 `json:"syncedRatio"`
	HealthyRatio      float64 `json:"healthyRatio"`
	MlcdCPUSeconds    float64 `json:"mlcdCPUSeconds"`
	PeakRSSMiB        float64 `json:"peakRSSMiB"`
	RequestsPerApp    float64 `json:"apiRequestsPerApp"`
	Renders           int64   `json:"renders"`
	RestWrites        int64   `json:"writesAtRest"`
	RestRenders       int64   `json:"rendersAtRest"`
	FirstAppliedAfter float64 `json:"firstAppSyncedSeconds"`
	// CreatedS is how long creating the Applications took (8 writers):
	// the API server's cost of admitting them, inside mlcd's clocks.
	CreatedS float64 `json:"applicationsCreatedSeconds"`
	// StartS is mlcd's start-up: controller built, CRDs installed, caches
	// synced (API server ready → ready to sync).
	StartS float64 `json:"controllerStartSeconds"`
	// The helm template | kubectl apply loop (N ≤ -loop-max).
	LoopSyncedS  float64 `json:"loopSyncedSeconds,omitempty"`
	LoopHealthyS float64 `json:"loopHealthySeconds,omitempty"`
	LoopRatio    float64 `json:"loopOverMlcdSynced,omitempty"`
	// P2 and P3: a values bump of one app among N, by webhook.
	CommitToLiveP50S float64 `json:"commitToLiveP50Seconds"`
	CommitToLiveP99S float64 `json:"commitToLiveP99Seconds"`
	RendersPerCommit float64 `json:"rendersPerCommit"`
	// PollS is the poll interval; PollP50S and PollMaxS are commit → live
	// over commits no webhook announces.
	PollS    float64 `json:"pollSeconds,omitempty"`
	PollP50S float64 `json:"pollCommitToLiveP50Seconds,omitempty"`
	PollMaxS float64 `json:"pollCommitToLiveMaxSeconds,omitempty"`
	// PollRendersPerCommit is P3 when every app polls every commit.
	PollRendersPerCommit float64 `json:"pollRendersPerCommit,omitempty"`
}

func main() {
	ns := flag.String("n", "100,1000", "comma-separated app counts")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060) to profile a run; /debug/cluster/pprof/… profiles the embedded cluster")
	growth := flag.String("growth", "", "comma-separated fleet sizes of ConfigMap-only apps for the growth table (e.g. 1000,5000,10000)")
	shards := flag.Int("shards", 1, "growth table: run the controller as shard 0 of this many (it syncs and caches only its share of the fleet)")
	verbose := flag.Int("v", -1, "log the controller at this verbosity to stderr (1: every reconcile)")
	flag.Parse()
	if *pprofAddr != "" {
		http.HandleFunc("/debug/cluster/", clusterProfile)
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }()
	}
	logger := logr.Discard()
	if *verbose >= 0 {
		logger = funcr.New(func(prefix, args string) {
			fmt.Fprintf(os.Stderr, "%s %s %s\n", time.Now().Format("15:04:05.000"), prefix, args)
		}, funcr.Options{Verbosity: *verbose})
	}
	ctrllog.SetLogger(logger)
	var results []Result
	for _, n := range counts(*ns) {
		r, err := run(n)
		if err != nil {
			fail(err)
		}
		results = append(results, r)
	}
	var grown []GrowthResult
	for _, n := range counts(*growth) {
		r, err := runGrowth(n, *shards)
		if err != nil {
			fail(err)
		}
		grown = append(grown, r)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APPS\tFLOOR SYNCED\tFLOOR HEALTHY\tMLCD SYNCED\tMLCD HEALTHY\tSYNCED ×\tHEALTHY ×\tAPPS CREATED\tFIRST SYNCED\tMLCD CPU\tPEAK RSS\tREQ/APP\tRENDERS\tAT REST (writes, renders)")
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%.1fs\t%.1fs\t%.1fs\t%.1fs\t%.2f\t%.2f\t%.1fs\t%.1fs\t%.1fs\t%.0f MiB\t%.1f\t%d\t%d, %d\n", r.Apps, r.FloorSyncedS, r.FloorHealthyS, r.MlcdSyncedS, r.MlcdHealthyS, r.SyncedRatio, r.HealthyRatio, r.CreatedS, r.FirstAppliedAfter, r.MlcdCPUSeconds, r.PeakRSSMiB, r.RequestsPerApp, r.Renders, r.RestWrites, r.RestRenders)
	}
	tw.Flush()
	fmt.Println()
	fmt.Fprintln(tw, "APPS\tMLCD START\tLOOP SYNCED\tLOOP HEALTHY\tLOOP ÷ MLCD (P4)\tCOMMIT→LIVE p50 (P2)\tp99\tRENDERS/COMMIT (P3)\tPOLL\tPOLLING ONLY p50\tmax")
	for _, r := range results {
		loop := "-\t-\t-"
		if r.LoopSyncedS > 0 {
			loop = fmt.Sprintf("%.1fs\t%.1fs\t%.1f×", r.LoopSyncedS, r.LoopHealthyS, r.LoopRatio)
		}
		poll := "-\t-\t-"
		if r.PollS > 0 {
			poll = fmt.Sprintf("%.0fs\t%.1fs\t%.1fs", r.PollS, r.PollP50S, r.PollMaxS)
		}
		fmt.Fprintf(tw, "%d\t%.1fs\t%s\t%.2fs\t%.2fs\t%.1f\t%s\n", r.Apps, r.StartS, loop, r.CommitToLiveP50S, r.CommitToLiveP99S, r.RendersPerCommit, poll)
	}
	tw.Flush()
	if len(grown) > 0 {
		fmt.Println()
		fmt.Fprintln(tw, "CONFIGMAP APPS\tSHARD\tFLOOR SYNCED\tMLCD SYNCED\tSYNCED ×\tMLCD CPU\tCPU/APP\tPEAK RSS\tREQ/APP")
		for _, r := range grown {
			shard := "-"
			if r.Shards > 1 {
				shard = fmt.Sprintf("0 of %d: %d apps", r.Shards, r.ShardApps)
			}
			fmt.Fprintf(tw, "%d\t%s\t%.1fs\t%.1fs\t%.2f\t%.1fs\t%.1f ms\t%.0f MiB\t%.1f\n", r.Apps, shard, r.FloorSyncedS, r.MlcdSyncedS, r.SyncedRatio, r.CPUSeconds, r.CPUPerAppMs, r.PeakRSSMiB, r.RequestsPerApp)
		}
		tw.Flush()
	}
	if *jsonOut != "" {
		data, _ := json.MarshalIndent(map[string]any{"apps": results, "growth": grown}, "", "  ")
		if err := os.WriteFile(*jsonOut, data, 0o644); err != nil {
			fail(err)
		}
	}
}

func counts(list string) []int {
	var out []int
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fail(fmt.Errorf("bad count %q", s))
		}
		out = append(out, n)
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// run measures n apps on a fresh cluster.
func run(n int) (Result, error) {
	res := Result{Apps: n}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "mlcd-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	logf("%d apps: starting a fresh embedded cluster (the first run builds the control-plane helper: many minutes)", n)
	cluster, cfg, c, err := startCluster(ctx, dir)
	if err != nil {
		return res, err
	}
	defer cluster.Stop()
	repo, err := modelRepo(filepath.Join(dir, "repo"))
	if err != nil {
		return res, err
	}

	// The floor: the same rendered objects, applied directly.
	objs, err := renderAll(repo, n, "floor")
	if err != nil {
		return res, err
	}
	logf("floor: applying %d objects of %d apps with server-side apply at full parallelism", len(objs), n)
	if err := createNamespaces(ctx, c, "floor", n); err != nil {
		return res, err
	}
	fc, floorCount, err := countingClient(cfg)
	if err != nil {
		return res, err
	}
	start := time.Now()
	if err := applyFloor(ctx, fc, len(objs), func(i int) client.Object { return objs[i] }); err != nil {
		return res, err
	}
	res.FloorSyncedS = time.Since(start).Seconds()
	logf("floor: requests per app: %s", floorCount.breakdown(n))
	if err := waitAvailable(ctx, c, "floor", n, start); err != nil {
		return res, err
	}
	res.FloorHealthyS = time.Since(start).Seconds()
	logf("floor: applied %.1fs, available %.1fs", res.FloorSyncedS, res.FloorHealthyS)

	if n <= *loopMax {
		if err := measureLoop(ctx, &res, cluster.Kubeconfig, repo, n, c); err != nil {
			return res, err
		}
	}

	// mlcd: the controller syncs the same apps from Applications.
	var first atomic.Int64
	cpu0 := cpuSeconds()
	started := time.Now()
	ctl, counter, stop, err := startStoppable(ctx, cfg, filepath.Join(dir, "cache"), 10*time.Minute)
	if err != nil {
		return res, err
	}
	res.StartS = time.Since(started).Seconds()
	// The namespaces exist beforehand, as for the floor (a namespace made
	// at sync time waits for kube-controller-manager to create its default
	// ServiceAccount before any pod can start).
	if err := createNamespaces(ctx, c, "mlcd", n); err != nil {
		return res, err
	}
	logf("mlcd: creating %d Applications", n)
	start = time.Now()
	// The bench reads the controller's cache without copying (it only
	// counts): its polling must not take CPU from the contender it times.
	reader := ctl.Manager.GetClient()
	// The first Synced app, watched from the start (creation takes a
	// while at 1,000).
	go func() {
		for ctx.Err() == nil {
			var list v1alpha1.ApplicationList
			if reader.List(ctx, &list, client.InNamespace("argocd"), client.UnsafeDisableDeepCopy) == nil {
				for _, a := range list.Items {
					if a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
						first.CompareAndSwap(0, int64(time.Since(start)))
					}
				}
			}
			if first.Load() != 0 {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	if err := createApps(ctx, c, n, func(i int) *v1alpha1.Application { return application(repo, i, n) }); err != nil {
		return res, err
	}
	res.CreatedS = time.Since(start).Seconds()
	logf("mlcd: %d Applications created in %.1fs", n, res.CreatedS)
	var peak float64
	for {
		var list v1alpha1.ApplicationList
		if err := reader.List(ctx, &list, client.InNamespace("argocd"), client.UnsafeDisableDeepCopy); err != nil {
			return res, err
		}
		synced, healthy := 0, 0
		for _, a := range list.Items {
			if a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
				synced++
				if a.Status.Health.Status == v1alpha1.HealthHealthy {
					healthy++
				}
			}
		}
		if synced == n && res.MlcdSyncedS == 0 {
			res.MlcdSyncedS = time.Since(start).Seconds()
		}
		peak = max(peak, rssMiB())
		if healthy == n {
			res.MlcdHealthyS = time.Since(start).Seconds()
			break
		}
		if time.Since(start) > 20*time.Minute {
			return res, fmt.Errorf("mlcd: %d of %d apps Synced, %d Healthy after 20m", synced, n, healthy)
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.FirstAppliedAfter = time.Duration(first.Load()).Seconds()
	res.MlcdCPUSeconds = cpuSeconds() - cpu0
	res.PeakRSSMiB = peak
	res.RequestsPerApp = float64(counter.requests.Load()) / float64(n)
	res.Renders = ctl.Reconciler.Renders()
	res.SyncedRatio = res.MlcdSyncedS / res.FloorSyncedS
	res.HealthyRatio = res.MlcdHealthyS / res.FloorHealthyS
	logf("mlcd: requests per app: %s", counter.breakdown(n))
	logf("mlcd: synced %.1fs (%.2f× floor), healthy %.1fs (%.2f× floor)", res.MlcdSyncedS, res.SyncedRatio, res.MlcdHealthyS, res.HealthyRatio)

	// At rest: a forced resync of every app writes and renders nothing.
	time.Sleep(3 * time.Second)
	writes, renders := counter.writes.Load(), ctl.Reconciler.Renders()
	for i := range n {
		if _, err := ctl.Reconciler.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "argocd", Name: fmt.Sprintf("model-%d", i)}}); err != nil {
			return res, err
		}
	}
	time.Sleep(time.Second)
	res.RestWrites, res.RestRenders = counter.writes.Load()-writes, ctl.Reconciler.Renders()-renders
	if res.LoopSyncedS > 0 {
		res.LoopRatio = res.LoopSyncedS / res.MlcdSyncedS
	}
	if err := commitToLive(ctx, &res, c, ctl, repo); err != nil {
		return res, err
	}
	if *pollEvery > 0 {
		// Polling only: the same controller, restarted with the poll
		// interval (it polled every 10 minutes above, so polls did not
		// touch the other figures).
		stop()
		ctl, _, stop, err = startStoppable(ctx, cfg, filepath.Join(dir, "cache"), *pollEvery)
		if err != nil {
			return res, err
		}
		if err := pollToLive(ctx, &res, c, ctl, repo, n, *pollEvery); err != nil {
			return res, err
		}
	}
	stop()
	return res, nil
}

// clusterConfig is the running embedded cluster's, for clusterProfile.
var clusterConfig atomic.Pointer[rest.Config]

// clusterProfile serves /debug/cluster/pprof/… from the embedded
// cluster's own /debug/pprof/…: one process holds kube-apiserver, etcd,
// kube-controller-manager and the scheduler, so a CPU profile there shows
// where the cluster spends what mlcd asks of it.
func clusterProfile(w http.ResponseWriter, r *http.Request) {
	cfg := clusterConfig.Load()
	if cfg == nil {
		http.Error(w, "no cluster running", http.StatusServiceUnavailable)
		return
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	url := strings.TrimSuffix(cfg.Host, "/") + "/debug/" + strings.TrimPrefix(r.URL.Path, "/debug/cluster/") + "?" + r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, url, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// countingClient is a client on cfg whose requests are counted and timed.
func countingClient(cfg *rest.Config) (client.Client, *counting, error) {
	ccfg, counter := counted(cfg)
	c, err := client.New(ccfg, client.Options{Scheme: controller.Scheme()})
	return c, counter, err
}

// counted is a copy of cfg whose requests counter counts and times.
func counted(cfg *rest.Config) (*rest.Config, *counting) {
	counter := &counting{}
	ccfg := rest.CopyConfig(cfg)
	ccfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	return ccfg, counter
}

// startCluster starts a fresh embedded cluster in dir and returns it, a
// REST config without client-side throttling to speak of, and a client.
func startCluster(ctx context.Context, dir string) (*localcluster.Cluster, *rest.Config, client.Client, error) {
	cluster, err := localcluster.Start(ctx, localcluster.Options{StateDir: filepath.Join(dir, "cluster"), Binary: os.Getenv("MLCD_CONTROLPLANE"), Progress: os.Stderr, StartTimeout: 20 * time.Minute})
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, err := cluster.RESTConfig()
	if err == nil {
		cfg.QPS, cfg.Burst = 2000, 4000
		clusterConfig.Store(cfg)
		var c client.Client
		if c, err = client.New(cfg, client.Options{Scheme: controller.Scheme()}); err == nil {
			return cluster, cfg, c, nil
		}
	}
	_ = cluster.Stop()
	return nil, nil, nil, err
}

// applyFloor server-side applies n objects, 64 at a time: the floor, with
// no Git, no render and no diff.
func applyFloor(ctx context.Context, c client.Client, n int, obj func(i int) client.Object) error {
	var g errgroup.Group
	g.SetLimit(64)
	for i := range n {
		g.Go(func() error {
			return c.Patch(ctx, obj(i), client.Apply, client.FieldOwner("bench-floor"), client.ForceOwnership)
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("floor apply: %w", err)
	}
	return nil
}

// startController starts mlcd's controller on cfg with its API requests
// counted, and returns once its caches are synced.
func startController(ctx context.Context, cfg *rest.Config, cacheDir string, poll time.Duration, shards int) (*controller.Controller, *counting, error) {
	ctl, counter, _, err := startShard(ctx, cfg, cacheDir, poll, shards)
	return ctl, counter, err
}

// startStoppable is startController, unsharded, with a stop function that
// returns once the controller has stopped.
func startStoppable(ctx context.Context, cfg *rest.Config, cacheDir string, poll time.Duration) (*controller.Controller, *counting, func(), error) {
	return startShard(ctx, cfg, cacheDir, poll, 1)
}

// startShard starts shard 0 of shards (1: the whole fleet).
func startShard(ctx context.Context, cfg *rest.Config, cacheDir string, poll time.Duration, shards int) (*controller.Controller, *counting, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	ccfg, counter := counted(cfg)
	started := time.Now()
	ctl, err := controller.New(ctx, ccfg, controller.ManagerOptions{
		Options:  controller.Options{PollInterval: poll, ControllerNamespace: "argocd", Shards: shards, MaxConcurrentReconciles: *concurrency},
		CacheDir: cacheDir,
	})
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	built := time.Since(started)
	go func() { _ = ctl.Start(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	if !ctl.Manager.GetCache().WaitForCacheSync(ctx) {
		stop()
		return nil, nil, nil, fmt.Errorf("controller cache did not sync")
	}
	logf("mlcd: controller built (CRDs installed, namespace and default project ensured) in %.2fs, caches synced %.2fs later", built.Seconds(), (time.Since(started) - built).Seconds())
	return ctl, counter, stop, nil
}
