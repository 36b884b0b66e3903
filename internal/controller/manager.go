package controller

import (
	"cmp"

	"github.com/mlcd-dev/mlcd/internal/desired"

	"context"
	"fmt"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/render"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// Scheme knows the built-in kinds, CRDs and mlcd's kinds.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = apiextensionsv1.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// ManagerOptions configure Run.
type ManagerOptions struct {
	Options
	// CacheDir holds Git repositories and checkouts.
	CacheDir string
	// ReadOnly builds the engine and caches without reconciling
	// Applications or installing anything (`mlcd server` beside a
	// controller).
	ReadOnly bool
	// LeaderElection runs the reconcilers only while this process holds
	// its shard's Lease in the control-plane namespace (replicas of a
	// shard stand by). The durations default to controller-runtime's
	// (15 s lease, 10 s renew deadline, 2 s retry).
	LeaderElection                            bool
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// LeaseName is the Lease a shard's replicas elect their leader with.
func LeaseName(shard, shards int) string {
	if shards <= 1 {
		return "mlcd-controller"
	}
	return fmt.Sprintf("mlcd-controller-shard-%d-of-%d", shard, shards)
}

// Controller is a configured, not yet started, Application controller.
type Controller struct {
	Manager    ctrl.Manager
	Reconciler *ApplicationReconciler
}

// New builds the manager and reconciler for the cluster at cfg and
// installs mlcd's CRDs.
func New(ctx context.Context, cfg *rest.Config, o ManagerOptions) (*Controller, error) {
	if k, ok := o.Recorder.(K8sRecorder); ok {
		cfg = rest.CopyConfig(cfg)
		cfg.Wrap(k.K8sTransport(v1alpha1.InClusterServer))
	}
	mo := ctrl.Options{
		Scheme:  Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Client:  client.Options{Cache: &client.CacheOptions{Unstructured: true}},
	}
	ns := cmp.Or(o.ControllerNamespace, v1alpha1.DefaultControlPlaneNamespace)
	sharded := o.Shards > 1 && !o.ReadOnly
	if sharded {
		// A shard reads its apps' objects through its own cache (shard.go);
		// the manager's holds ConfigMaps and Secrets only of the control
		// plane (credentials, keys, notifications), not every app's.
		only := cache.ByObject{Namespaces: map[string]cache.Config{ns: {}}}
		mo.Cache.ByObject = map[client.Object]cache.ByObject{&corev1.ConfigMap{}: only, &corev1.Secret{}: only}
	}
	if o.LeaderElection && !o.ReadOnly {
		mo.LeaderElection = true
		mo.LeaderElectionID = LeaseName(o.Shard, o.Shards)
		mo.LeaderElectionNamespace = ns
		mo.LeaderElectionResourceLock = "leases"
		if o.LeaseDuration > 0 {
			mo.LeaseDuration, mo.RenewDeadline, mo.RetryPeriod = &o.LeaseDuration, &o.RenewDeadline, &o.RetryPeriod
		}
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, err
	}
	// The apps' objects: the manager's cache, or a shard's own.
	objects, reader := mgr.GetCache(), client.Reader(mgr.GetClient())
	if sharded {
		if objects, reader, err = objectCache(mgr.GetConfig(), cache.Options{HTTPClient: mgr.GetHTTPClient(), Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()}, direct, o.Shard, o.Shards); err != nil {
			return nil, fmt.Errorf("shard cache: %w", err)
		}
		if err := mgr.Add(objects); err != nil {
			return nil, err
		}
	}
	applier := apply.New(direct, reader)
	if !o.ReadOnly {
		if err := InstallCRDs(ctx, direct); err != nil {
			return nil, err
		}
		// The mapper caches discovery: reset it so the new CRDs are known.
		if r, ok := mgr.GetRESTMapper().(interface{ Reset() }); ok {
			r.Reset()
		}
		if err := applier.EnsureNamespace(ctx, ns); err != nil {
			return nil, err
		}
		if err := EnsureDefaultProject(ctx, direct, ns); err != nil {
			return nil, err
		}
	}
	renderer := render.New()
	if rr, ok := o.Recorder.(RenderRecorder); ok {
		renderer.Observe = rr.Rendered
	}
	rec := &ApplicationReconciler{
		client:  mgr.GetClient(),
		applier: applier,
		objects: objects,
		engine: &desired.Engine{
			// A fetch is reused for 80% of the poll interval: requeues
			// come every interval ±10%, so each poll fetches and a commit
			// is live within about one interval.
			Sources:    source.NewCache(source.Options{Dir: filepath.Join(o.CacheDir, "git"), MaxAge: cmp.Or(o.PollInterval, v1alpha1.DefaultPollInterval) * 4 / 5, OnRequest: gitRecorder(o.Recorder)}),
			Charts:     source.NewCharts(filepath.Join(o.CacheDir, "charts"), cmp.Or(o.PollInterval, v1alpha1.DefaultPollInterval)*4/5),
			Renderer:   renderer,
			Normalizer: applier,
		},
		events:  mgr.GetEventRecorder("mlcd-application-controller"),
		Options: o.Options,
	}
	if err := rec.setup(mgr, o.ReadOnly); err != nil {
		return nil, err
	}
	if !o.ReadOnly {
		if err := (&ApplicationSetReconciler{apps: rec}).setup(mgr); err != nil {
			return nil, err
		}
		if err := (&NotificationReconciler{apps: rec}).setup(mgr); err != nil {
			return nil, err
		}
	}
	// The kinds every first reconcile reads through the cache: their
	// informers start and sync with the manager, not on the first app.
	// (An API server's diff engine reads only what a diff asks for.)
	var warm []client.Object
	if !o.ReadOnly {
		warm = []client.Object{&v1alpha1.AppProject{}, &v1alpha1.ModelPolicy{}, &corev1.Secret{}, &corev1.ConfigMap{}}
	}
	for _, obj := range warm {
		if _, err := mgr.GetCache().GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return nil, fmt.Errorf("watch %T: %w", obj, err)
		}
	}
	return &Controller{Manager: mgr, Reconciler: rec}, nil
}

// CachedObjects lists what the controller caches of its apps' objects on
// its own cluster (diagnostics and tests): everything it reads of a kind
// unsharded; a shard's own apps' objects sharded.
func (c *Controller) CachedObjects(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return c.Reconciler.objects.List(ctx, list, opts...)
}

// Namespace is the control-plane namespace.
func (c *Controller) Namespace() string { return c.Reconciler.Options.ControllerNamespace }

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error { return c.Manager.Start(ctx) }

// gitRecorder is the recorder's Git hook, if it has one.
func gitRecorder(rec Recorder) func(repo, requestType string, took time.Duration, err error) {
	if g, ok := rec.(GitRecorder); ok {
		return g.GitRequest
	}
	return nil
}
