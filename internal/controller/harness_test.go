package controller_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	eventsv1 "k8s.io/api/events/v1"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(clustertest.Run(m))
}

// harness runs a controller that reads Applications of one test namespace.
type harness struct {
	t  *testing.T
	ns string
	c  client.Client
	// cacheDir is the controller's Git cache (checkouts live under it).
	cacheDir string
	// stop stops the running controller; restart starts another on the
	// same namespace (a controller process killed and started again).
	stop    func()
	restart func()
	// renders is how many renders the running controller performed.
	renders func() int64
	// ctrl is the running controller.
	ctrl func() *controller.Controller
}

func start(t *testing.T, poll time.Duration) *harness {
	t.Helper()
	return startWith(t, poll, nil)
}

func startWith(t *testing.T, poll time.Duration, reg controller.ModelRegistry) *harness {
	t.Helper()
	return startOpts(t, controller.Options{PollInterval: poll, Registry: reg})
}

// startOpts runs a controller whose control-plane namespace is a new
// test namespace.
func startOpts(t *testing.T, o controller.Options) *harness {
	t.Helper()
	return startConfig(t, o, nil)
}

// startConfig is startOpts with the controller's REST config changed by
// mutate (e.g. a transport that counts requests).
func startConfig(t *testing.T, o controller.Options, mutate func(*rest.Config)) *harness {
	t.Helper()
	env := clustertest.Get(t)
	ns := env.Namespace(t)
	o.ControllerNamespace = ns
	// The tests' metric servers run on loopback, as under `mlcd up`.
	o.Egress.AllowLoopback = true
	cacheDir := t.TempDir()
	cfg := rest.CopyConfig(env.Config)
	if mutate != nil {
		mutate(cfg)
	}
	var current *controller.Controller
	run := func() func() {
		ctx, cancel := context.WithCancel(context.Background())
		ctrl, err := controller.New(ctx, cfg, controller.ManagerOptions{Options: o, CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		current = ctrl
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := ctrl.Start(ctx); err != nil {
				t.Errorf("controller: %v", err)
			}
		}()
		return func() { cancel(); <-done }
	}
	h := &harness{t: t, ns: ns, cacheDir: cacheDir, renders: func() int64 { return current.Reconciler.Renders() }, ctrl: func() *controller.Controller { return current }}
	h.stop = run()
	h.restart = func() { h.stop(); h.stop = run() }
	t.Cleanup(func() { h.stop() })
	c, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h
}

// modelRepo is a repository holding the example's fraud-detection chart.
func modelRepo(t testing.TB) *gittest.Repo {
	r := gittest.New(t)
	r.CopyFS(examples.MLDeployments, "ml-deployments/models/fraud-detection", "models/fraud-detection", nil)
	r.CopyFS(examples.MLDeployments, "ml-deployments/base", "base", nil) // the shared model-server chart
	// Ungoverned unless a test writes its own policy (see model_test.go).
	r.Remove("models/fraud-detection/mlcd.yaml")
	r.Commit("fraud-detection chart")
	return r
}

// create makes an object from YAML with {{NS}} and {{REPO}} substituted.
func (h *harness) create(doc string, repl map[string]string) {
	h.t.Helper()
	for k, v := range repl {
		doc = strings.ReplaceAll(doc, k, v)
	}
	doc = strings.ReplaceAll(doc, "{{NS}}", h.ns)
	var obj client.Object
	switch {
	case strings.Contains(doc, "kind: AppProject"):
		obj = &v1alpha1.AppProject{}
	case strings.Contains(doc, "kind: ModelPolicy"):
		obj = &v1alpha1.ModelPolicy{}
	default:
		obj = &v1alpha1.Application{}
	}
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		h.t.Fatalf("parse: %v\n%s", err, doc)
	}
	if err := h.c.Create(context.Background(), obj); err != nil {
		h.t.Fatalf("create %s: %v", obj.GetName(), err)
	}
}

func (h *harness) app(name string) *v1alpha1.Application {
	h.t.Helper()
	app := &v1alpha1.Application{}
	if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: name}, app); err != nil {
		h.t.Fatalf("get app %s: %v", name, err)
	}
	return app
}

func (h *harness) patchApp(name string, mutate func(*v1alpha1.Application)) {
	h.t.Helper()
	for i := 0; i < 10; i++ {
		app := h.app(name)
		before := app.DeepCopy()
		mutate(app)
		err := h.c.Patch(context.Background(), app, client.MergeFrom(before))
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("patch app %s failed", name)
}

func (h *harness) refresh(name string) {
	h.patchApp(name, func(a *v1alpha1.Application) {
		if a.Annotations == nil {
			a.Annotations = map[string]string{}
		}
		a.Annotations[v1alpha1.RefreshAnnotation] = "normal"
	})
}

func (h *harness) deployment(ns, name string) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, d); err != nil {
		return nil
	}
	return d
}

// eventually polls cond until it holds; it returns how long that took.
func (h *harness) eventually(timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	h.t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < timeout {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		last = state
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("%s: not reached within %s; last: %s", what, timeout, last)
	return 0
}

func (h *harness) waitSynced(name, sha string) *v1alpha1.Application {
	h.t.Helper()
	var app *v1alpha1.Application
	h.eventually(60*time.Second, "app "+name+" Synced+Healthy at "+shortSHA(sha), func() (bool, string) {
		app = &v1alpha1.Application{}
		if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: name}, app); err != nil {
			return false, err.Error()
		}
		s := app.Status
		return s.Sync.Status == v1alpha1.SyncStatusSynced && s.Health.Status == v1alpha1.HealthHealthy && (sha == "" || s.Sync.Revision == sha),
			fmt.Sprintf("sync=%s health=%s rev=%s conditions=%v", s.Sync.Status, s.Health.Status, shortSHA(s.Sync.Revision), s.Conditions)
	})
	return app
}

func (h *harness) waitCondition(name, typ, contains string) {
	h.t.Helper()
	h.eventually(30*time.Second, fmt.Sprintf("app %s condition %s containing %q", name, typ, contains), func() (bool, string) {
		app := h.app(name)
		for _, c := range app.Status.Conditions {
			if c.Type == typ && strings.Contains(c.Message, contains) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%v", app.Status.Conditions)
	})
}

// events returns "Type Reason: note" of the Events on the app.
func (h *harness) events(name string) []string {
	h.t.Helper()
	var list eventsv1.EventList
	if err := h.c.List(context.Background(), &list, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "Application" && e.Regarding.Name == name {
			out = append(out, e.Type+" "+e.Reason+": "+e.Note)
		}
	}
	return out
}

// waitEvent waits for an Event on the app whose reason is reason and
// whose note contains contains.
func (h *harness) waitEvent(name, reason, contains string) {
	h.t.Helper()
	h.eventually(30*time.Second, fmt.Sprintf("event %s on %s containing %q", reason, name, contains), func() (bool, string) {
		evs := h.events(name)
		for _, e := range evs {
			if strings.Contains(e, " "+reason+": ") && strings.Contains(e, contains) {
				return true, ""
			}
		}
		return false, strings.Join(evs, " | ")
	})
}

func image(d *appsv1.Deployment) string { return d.Spec.Template.Spec.Containers[0].Image }

func shortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

func (h *harness) namespaceGone(t *testing.T, ns string) {
	t.Cleanup(func() {
		_ = h.c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
}
