// Package faults drives the real mlcd binary (`mlcd controller`) against
// the embedded control plane and a real Git smart-HTTP server, injects one
// fault at a time, and checks the invariants a team trusts production
// with: nothing lost, nothing wrongly deleted, convergence within a
// stated bound, and apps that say what is wrong while it is.
package faults

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// mlcdBin is the mlcd binary built once for the package.
var mlcdBin string

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(clustertest.RunWithMLCD(m, &mlcdBin))
}

// gitFaults sits in front of the Git server: normal, down (connection
// refused-like 502s), failing (500s) or slow.
type gitFaults struct {
	mode     atomic.Value // "", "down", "500", "slow"
	slow     time.Duration
	requests atomic.Int64
	inflight atomic.Int64
	peak     atomic.Int64
}

func (g *gitFaults) set(mode string) { g.mode.Store(mode) }

func (g *gitFaults) wrap(h http.Handler) http.Handler {
	g.set("")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.requests.Add(1)
		n := g.inflight.Add(1)
		defer g.inflight.Add(-1)
		for {
			p := g.peak.Load()
			if n <= p || g.peak.CompareAndSwap(p, n) {
				break
			}
		}
		switch g.mode.Load().(string) {
		case "down":
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close() // the connection drops, as a dead server's would
					return
				}
			}
			w.WriteHeader(http.StatusBadGateway)
			return
		case "500":
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		case "slow":
			select {
			case <-time.After(g.slow):
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// world is one test's apps, repository, controller process and
// bystanders, in a namespace of the shared control plane.
type world struct {
	t      *testing.T
	env    *clustertest.Env
	ns     string
	c      client.Client
	repo   *gittest.Repo
	git    *gitFaults
	gitURL string
	apps   int
	dir    string
	// registry is the model registry URL given to the controller ("": none).
	registry string
	// extraApps are Applications besides app-N that converge counts.
	extraApps int

	mu   sync.Mutex
	ctrl *exec.Cmd
	logs *os.File
	// bystanders: ConfigMaps like the apps' (same namespace and labels)
	// that mlcd never applied; their resourceVersions must not move.
	bystanders map[string]string
}

// newWorld commits n apps (apps/app-N: a stable ConfigMap and one named
// after the revision's generation), creates their Applications and the
// bystanders; the controller is not started.
func newWorld(t *testing.T, n int) *world {
	t.Helper()
	return newWorldOn(t, n, clustertest.Get(t))
}

// newWorldOn is newWorld on the control plane of env.
func newWorldOn(t *testing.T, n int, env *clustertest.Env) *world {
	t.Helper()
	c, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := controller.InstallCRDs(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, env: env, ns: env.Namespace(t), c: c, repo: gittest.New(t), git: &gitFaults{slow: 10 * time.Second}, apps: n, dir: t.TempDir()}
	srv := httptest.NewServer(w.git.wrap(w.repo.Handler("", "")))
	t.Cleanup(srv.Close)
	w.gitURL = srv.URL + w.repo.HTTPPath()
	w.commitGeneration(0)
	// The default project, as the controller creates it at start.
	proj := &v1alpha1.AppProject{}
	yaml.Unmarshal([]byte("spec: {sourceRepos: ['*'], destinations: [{server: '*', namespace: '*'}], clusterResourceWhitelist: [{group: '*', kind: '*'}]}"), proj)
	proj.Name, proj.Namespace = "default", w.ns
	if err := c.Create(context.Background(), proj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for i := range n {
		app := &v1alpha1.Application{}
		doc := fmt.Sprintf("spec: {project: default, source: {repoURL: %q, targetRevision: main, path: apps/app-%d}, destination: {server: https://kubernetes.default.svc, namespace: %s}, syncPolicy: {automated: {prune: true, selfHeal: true}}}", w.gitURL, i, w.ns)
		if err := yaml.Unmarshal([]byte(doc), app); err != nil {
			t.Fatal(err)
		}
		app.Name, app.Namespace = fmt.Sprintf("app-%d", i), w.ns
		if err := c.Create(context.Background(), app); err != nil {
			t.Fatal(err)
		}
	}
	w.bystanders = map[string]string{}
	for i := range 5 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bystander-%d", i), Namespace: w.ns, Labels: map[string]string{"app.kubernetes.io/instance": fmt.Sprintf("app-%d", i), "tier": "model"}}, Data: map[string]string{"k": "mine"}}
		if err := c.Create(context.Background(), cm); err != nil {
			t.Fatal(err)
		}
		w.bystanders[cm.Name] = cm.ResourceVersion
	}
	t.Cleanup(w.stop)
	return w
}

// commitGeneration writes every app's files for generation g and commits:
// the stable ConfigMap's data says g; the per-generation ConfigMap of g-1
// is replaced by g's (so every sync prunes).
func (w *world) commitGeneration(g int) string {
	files := map[string]string{}
	for i := range w.apps {
		files[fmt.Sprintf("apps/app-%d/stable.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-%d-stable, labels: {tier: model}}\ndata: {generation: %q}\n", i, fmt.Sprint(g))
		files[fmt.Sprintf("apps/app-%d/gen.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-%d-gen-%d, labels: {tier: model}}\ndata: {generation: %q}\n", i, g, fmt.Sprint(g))
	}
	w.repo.Write(files)
	return w.repo.Commit(fmt.Sprintf("generation %d", g))
}

// start runs `mlcd controller` (a new process) against the cluster.
func (w *world) start() {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctrl != nil {
		return
	}
	if w.logs == nil {
		f, err := os.Create(filepath.Join(w.dir, "controller.log"))
		if err != nil {
			w.t.Fatal(err)
		}
		w.logs = f
	}
	cmd := exec.Command(mlcdBin, w.controllerArgs(filepath.Join(w.dir, "cache"))...)
	cmd.Stdout, cmd.Stderr = w.logs, w.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.ctrl = cmd
}

// kill SIGKILLs the controller.
func (w *world) kill() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctrl == nil {
		return
	}
	_ = w.ctrl.Process.Signal(syscall.SIGKILL)
	_ = w.ctrl.Wait()
	w.ctrl = nil
}

func (w *world) stop() {
	w.kill()
	if w.logs != nil {
		w.logs.Close()
	}
}

func (w *world) app(i int) *v1alpha1.Application { return w.namedApp(fmt.Sprintf("app-%d", i)) }

// converge waits until every app is Synced and Healthy at sha, with no
// operation Running, and returns how long it took.
func (w *world) converge(sha string, bound time.Duration) time.Duration {
	w.t.Helper()
	start := time.Now()
	for {
		var list v1alpha1.ApplicationList
		if err := w.c.List(context.Background(), &list, client.InNamespace(w.ns)); err != nil {
			w.t.Fatal(err)
		}
		var behind []string
		for _, a := range list.Items {
			s := a.Status
			if s.Sync.Status != v1alpha1.SyncStatusSynced || s.Health.Status != v1alpha1.HealthHealthy || s.Sync.Revision != sha ||
				(s.OperationState != nil && s.OperationState.Phase == v1alpha1.PhaseRunning) {
				behind = append(behind, fmt.Sprintf("%s=%s/%s@%.7s", a.Name, s.Sync.Status, s.Health.Status, s.Sync.Revision))
			}
		}
		if len(behind) == 0 && len(list.Items) == w.apps+w.extraApps {
			return time.Since(start)
		}
		if time.Since(start) > bound {
			w.t.Fatalf("not converged to %.7s within %s: %d apps behind, e.g. %s\ncontroller log: %s", sha, bound, len(behind), strings.Join(first(behind, 5), ", "), filepath.Join(w.dir, "controller.log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// stableLost counts apps whose stable ConfigMap (desired in every
// revision) is missing: a wrongful deletion.
func (w *world) stableLost() []string {
	var lost []string
	for i := range w.apps {
		var cm corev1.ConfigMap
		err := w.c.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: fmt.Sprintf("app-%d-stable", i)}, &cm)
		if apierrors.IsNotFound(err) || (err == nil && cm.DeletionTimestamp != nil) {
			lost = append(lost, cm.Name)
		}
	}
	return lost
}

// checkBystanders fails when mlcd wrote or deleted any bystander.
func (w *world) checkBystanders() {
	w.t.Helper()
	for name, rv := range w.bystanders {
		var cm corev1.ConfigMap
		if err := w.c.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: name}, &cm); err != nil {
			w.t.Errorf("bystander %s: %v", name, err)
			continue
		}
		if cm.ResourceVersion != rv || cm.Data["k"] != "mine" {
			w.t.Errorf("bystander %s was changed (resourceVersion %s → %s)", name, rv, cm.ResourceVersion)
		}
	}
}

// checkInventory: every object in every app's inventory exists with the
// content of the synced generation, and only that generation's objects
// of the app exist (the others were pruned).
func (w *world) checkInventory(g int) (lost, extra int) {
	w.t.Helper()
	var cms corev1.ConfigMapList
	if err := w.c.List(context.Background(), &cms, client.InNamespace(w.ns), client.MatchingLabels{"tier": "model"}); err != nil {
		w.t.Fatal(err)
	}
	live := map[string]corev1.ConfigMap{}
	for _, cm := range cms.Items {
		live[cm.Name] = cm
	}
	for i := range w.apps {
		a := w.app(i)
		for _, rs := range a.Status.Resources {
			cm, ok := live[rs.Name]
			if !ok || cm.Data["generation"] != fmt.Sprint(g) {
				lost++
				w.t.Errorf("app-%d: inventory object %s missing or not at generation %d (%v)", i, rs.Name, g, cm.Data)
			}
		}
		for name := range live {
			if strings.HasPrefix(name, fmt.Sprintf("app-%d-gen-", i)) && name != fmt.Sprintf("app-%d-gen-%d", i, g) {
				extra++
				w.t.Errorf("app-%d: %s of an older generation was not pruned", i, name)
			}
		}
	}
	return lost, extra
}

// patchAll changes every app's spec.
func (w *world) patchAll(mutate func(*v1alpha1.Application)) {
	w.t.Helper()
	for i := range w.apps {
		a := w.app(i)
		before := a.DeepCopy()
		mutate(a)
		if err := w.c.Patch(context.Background(), a, client.MergeFrom(before)); err != nil {
			w.t.Fatal(err)
		}
	}
}

// refresh asks for a fetch of app-i now (the refresh annotation, as a
// webhook does).
func (w *world) refresh(i int) { w.refreshApp(fmt.Sprintf("app-%d", i)) }

// faultyProxy forwards to target unless down (then 503s) or hanging
// (then the request waits until the client gives up).
type faultyProxy struct {
	mode atomic.Value // "", "down", "hang"
}

func (p *faultyProxy) set(mode string) { p.mode.Store(mode) }

func (p *faultyProxy) serve(t *testing.T, target string) string {
	p.set("")
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p.mode.Load().(string) {
		case "down":
			http.Error(w, "registry down", http.StatusServiceUnavailable)
			return
		case "hang":
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (w *world) namedApp(name string) *v1alpha1.Application {
	a := &v1alpha1.Application{}
	_ = w.c.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: name}, a)
	return a
}

func (w *world) refreshApp(name string) {
	a := w.namedApp(name)
	before := a.DeepCopy()
	if a.Annotations == nil {
		a.Annotations = map[string]string{}
	}
	a.Annotations[v1alpha1.RefreshAnnotation] = "normal"
	_ = w.c.Patch(context.Background(), a, client.MergeFrom(before))
}

// controllerArgs are `mlcd controller`'s flags for this world.
func (w *world) controllerArgs(cacheDir string) []string {
	args := []string{"controller", "--kubeconfig", w.env.Kubeconfig, "--namespace", w.ns, "--cache-dir", cacheDir, "--poll-interval", "3s"}
	if w.registry != "" {
		args = append(args, "--registry", w.registry)
	}
	return args
}

// startProcess runs another `mlcd controller` with extra flags (shards,
// leader election) and returns it; it is killed when the test ends.
func (w *world) startProcess(extra ...string) *exec.Cmd {
	w.t.Helper()
	f, err := os.OpenFile(filepath.Join(w.dir, "controllers.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command(mlcdBin, append(w.controllerArgs(filepath.Join(w.dir, fmt.Sprintf("cache-%d", time.Now().UnixNano()))), extra...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); f.Close() })
	return cmd
}
