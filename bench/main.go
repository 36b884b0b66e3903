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
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster"
	"github.com/mlcd-dev/mlcd/internal/render"
	"github.com/mlcd-dev/mlcd/internal/source"
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

// createApps creates n Applications by server-side apply, 8 at a time,
// as `kubectl apply --server-side` of a directory (or `mlcd up`, or an
// app-of-apps) would. Not by POST: kube-apiserver holds every POST of a
// custom resource for 2 s after its CRD is established (for HA servers
// that may not have seen it yet), and mlcd has just installed the CRDs —
// that hold would be counted as mlcd's time.
func createApps(ctx context.Context, c client.Client, n int, app func(i int) *v1alpha1.Application) error {
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			a := app(i)
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(a)
			if err != nil {
				return err
			}
			obj := &unstructured.Unstructured{Object: u}
			unstructured.RemoveNestedField(obj.Object, "status")
			unstructured.RemoveNestedField(obj.Object, "metadata", "creationTimestamp")
			obj.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Application"))
			return c.Patch(ctx, obj, client.Apply, client.FieldOwner("kubectl"))
		})
	}
	return g.Wait()
}

// modelRepo is a Git repository with the example's model chart and the
// shared chart it depends on.
func modelRepo(dir string) (string, error) {
	for _, p := range []struct{ from, to string }{{"ml-deployments/models/fraud-detection", "models/fraud-detection"}, {"ml-deployments/base", "base"}} {
		if err := source.CopyFS(examples.MLDeployments, p.from, filepath.Join(dir, p.to), nil); err != nil {
			return "", err
		}
	}
	os.Remove(filepath.Join(dir, "models/fraud-detection/mlcd.yaml"))
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "models"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("git %v: %s", args, out)
		}
	}
	return dir, nil
}

// params are each app's Helm parameters (small pods: the simulated nodes
// would otherwise run out of room long before mlcd does).
func params(i int) []v1alpha1.HelmParameter {
	return []v1alpha1.HelmParameter{
		{Name: "model.name", Value: fmt.Sprintf("model-%d", i)}, {Name: "model.replicas", Value: "1"},
		{Name: "autoscaling.minReplicas", Value: "1"}, {Name: "resources.requests.cpu", Value: "10m"}, {Name: "resources.requests.memory", Value: "16Mi"},
	}
}

func teamNamespace(prefix string, i int) string { return fmt.Sprintf("%s-t%02d", prefix, i/50) }

// createNamespaces creates the prefix's team namespaces and waits until
// each has its default ServiceAccount (no pod can be created there before
// kube-controller-manager makes it), so every contender starts from ready
// namespaces.
func createNamespaces(ctx context.Context, c client.Client, prefix string, n int) error {
	for t := 0; t*50 < n; t++ {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamNamespace(prefix, t*50)}}
		if err := c.Create(ctx, ns); err != nil {
			return err
		}
	}
	for t := 0; t*50 < n; t++ {
		key := types.NamespacedName{Namespace: teamNamespace(prefix, t*50), Name: "default"}
		if err := until(ctx, time.Minute, func() bool { return c.Get(ctx, key, &corev1.ServiceAccount{}) == nil }); err != nil {
			return fmt.Errorf("namespace %s has no default ServiceAccount: %w", key.Namespace, err)
		}
	}
	return nil
}

// renderAll renders every app's objects as mlcd would (same chart,
// values and parameters), for the floor.
func renderAll(repo string, n int, prefix string) ([]*unstructured.Unstructured, error) {
	r := render.New()
	var out []*unstructured.Unstructured
	for i := range n {
		ns := teamNamespace(prefix, i)
		res, err := r.Render(render.Input{Root: repo, Revision: "bench", AppName: fmt.Sprintf("model-%d", i), Namespace: ns,
			Source: v1alpha1.ApplicationSource{Path: "models/fraud-detection", Helm: &v1alpha1.ApplicationSourceHelm{ValueFiles: []string{"values-production.yaml"}, Parameters: params(i)}}})
		if err != nil {
			return nil, err
		}
		for _, o := range res.Objects {
			o.SetNamespace(ns)
			out = append(out, o)
		}
	}
	return out, nil
}

func application(repo string, i, n int) *v1alpha1.Application {
	return &v1alpha1.Application{
		// Path-scoped, as in a monorepo: a push refreshes only the apps
		// whose directory it touches.
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("model-%d", i), Namespace: "argocd", Annotations: map[string]string{v1alpha1.ManifestGeneratePathsAnnotation: "."}},
		Spec: v1alpha1.ApplicationSpec{
			Project: "default",
			Source: &v1alpha1.ApplicationSource{RepoURL: "file://" + repo, TargetRevision: "main", Path: "models/fraud-detection",
				Helm: &v1alpha1.ApplicationSourceHelm{ValueFiles: []string{"values-production.yaml"}, Parameters: params(i)}},
			Destination: v1alpha1.ApplicationDestination{Server: v1alpha1.InClusterServer, Namespace: teamNamespace("mlcd", i)},
			SyncPolicy:  &v1alpha1.SyncPolicy{Automated: &v1alpha1.SyncPolicyAutomated{Prune: true, SelfHeal: true}, SyncOptions: []string{"CreateNamespace=true"}},
		},
	}
}

// waitAvailable waits until every Deployment of the prefix's namespaces
// is Available.
func waitAvailable(ctx context.Context, c client.Client, prefix string, n int, start time.Time) error {
	for {
		available := 0
		for t := 0; t*50 < n; t++ {
			var list appsv1.DeploymentList
			if err := c.List(ctx, &list, client.InNamespace(teamNamespace(prefix, t*50))); err != nil {
				return err
			}
			for _, d := range list.Items {
				for _, cond := range d.Status.Conditions {
					if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue && d.Status.ObservedGeneration >= d.Generation {
						available++
					}
				}
			}
		}
		if available == n {
			return nil
		}
		if time.Since(start) > 20*time.Minute {
			return fmt.Errorf("%s: %d of %d Deployments available after 20m", prefix, available, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// counting counts API requests, and writes among them (neither reads nor
// dry runs).
type counting struct {
	next     http.RoundTripper
	requests atomic.Int64
	writes   atomic.Int64
	mu       sync.Mutex
	byKind   map[string]int // "PATCH configmaps dryRun" → count
	// took: the time to the response's headers, summed by kind (for the
	// mean latency the breakdown shows).
	took map[string]time.Duration
}

func (w *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	w.requests.Add(1)
	kind := requestKind(r)
	if r.Method != http.MethodGet && !strings.Contains(r.URL.RawQuery, "dryRun=All") {
		w.writes.Add(1)
	}
	began := time.Now()
	resp, err := w.next.RoundTrip(r)
	took := time.Since(began)
	w.mu.Lock()
	if w.byKind == nil {
		w.byKind, w.took = map[string]int{}, map[string]time.Duration{}
	}
	w.byKind[kind]++
	w.took[kind] += took
	w.mu.Unlock()
	return resp, err
}

// requestKind is a request's verb, resource and watch/dry-run marks,
// for the breakdown of requests per app: /api/v1/[namespaces/NS/]RESOURCE…
// or /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE….
func requestKind(r *http.Request) string {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) > 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) > 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		parts = nil // discovery
	}
	if len(parts) > 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	resource := "discovery"
	if len(parts) > 0 {
		resource = parts[0]
	}
	k := r.Method + " " + resource
	if r.URL.Query().Get("watch") == "true" {
		k += " watch"
	}
	if r.URL.Query().Get("dryRun") == "All" {
		k += " dryRun"
	}
	return k
}

// breakdown is the requests per app by kind, most first, each with its
// mean latency (to the response's headers; watches left out).
func (w *counting) breakdown(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range w.byKind {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var b strings.Builder
	for _, e := range all {
		if float64(e.v)/float64(n) < 0.05 {
			continue
		}
		fmt.Fprintf(&b, "%s %.2f", e.k, float64(e.v)/float64(n))
		if !strings.HasSuffix(e.k, " watch") {
			fmt.Fprintf(&b, " (%.0f ms)", float64(w.took[e.k].Milliseconds())/float64(e.v))
		}
		b.WriteString("; ")
	}
	return b.String()
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
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
