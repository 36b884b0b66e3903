package controller

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/desired"
	"github.com/mlcd-dev/mlcd/internal/egress"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/repocreds"
	gitsource "github.com/mlcd-dev/mlcd/internal/source"
)

// Options configure the Application reconciler.
type Options struct {
	// NoGitNotes turns off the deployment notes (refs/notes/mlcd) written
	// to a governed app's repository once it runs a commit healthy.
	NoGitNotes bool
	// CommitterName and CommitterEmail commit mlcd's writes (reverts,
	// promotions, notes); default "mlcd" <mlcd@localhost>.
	CommitterName, CommitterEmail string
	// Egress is the policy for every request a tenant's analysis metric
	// aims (web, Prometheus, golden sets): the zero policy reaches public
	// addresses only.
	Egress egress.Policy
	// SyncTimeout bounds a sync operation with waves or hooks (default
	// DefaultSyncTimeout).
	SyncTimeout time.Duration
	// PollInterval is how often a repository is fetched without a refresh
	// request. Default v1alpha1.DefaultPollInterval; requeues are jittered
	// ±10%.
	PollInterval time.Duration
	// ControllerNamespace is the control-plane namespace: AppProjects,
	// repository Secrets, signing keys and known hosts are read only from
	// there, and its Applications may use any project. Default "argocd".
	ControllerNamespace string
	// AppNamespaces are globs of further namespaces whose Applications are
	// reconciled, each only if its project's sourceNamespaces lists the
	// namespace (Argo CD's "apps in any namespace").
	AppNamespaces []string
	// AppSetNamespaces are globs of further namespaces whose
	// ApplicationSets are reconciled (Argo CD's
	// --applicationset-namespaces). Default none: a set generates apps
	// with the controller's credentials and reads any repository its
	// generators name, so only the control-plane namespace's are
	// reconciled unless an admin opts a namespace in.
	AppSetNamespaces []string
	// MaxConcurrentReconciles defaults to DefaultConcurrency.
	MaxConcurrentReconciles int
	// Registry gates governed apps and receives write-backs; nil means
	// governed apps are not synced (fail closed).
	Registry ModelRegistry
	// Recorder is told every reconcile's outcome (metrics); nil: none.
	Recorder Recorder
	// Shard and Shards split the apps between controller processes: this
	// one reconciles the apps ShardOf assigns to Shard (Shards ≤ 1: all).
	Shard, Shards int
}

// DefaultConcurrency is how many Applications are reconciled at once. A
// reconcile mostly waits on the API server — at cold start on the
// Service's ClusterIP, which kube-apiserver allocates one at a time. On
// the 2-core reference machine (`go run ./bench -concurrency C`) 1,000
// cold apps take the same time with 48, 128 or 256 (54–59 s); at 100 apps
// 128 was faster on a fresh cluster (Synced 3.7–3.9 s against 3.9–4.4 s,
// three runs each) and slower after the helm|kubectl loop had run on it
// (5.4–6.9 s against 4.9–5.7 s, two runs each): no case for a change.
const DefaultConcurrency = 48

// ApplicationReconciler syncs Applications.
type ApplicationReconciler struct {
	client  client.Client
	applier *apply.Applier
	// objects is where the apps' objects are read and watched: the
	// manager's cache, or a shard's label-selected one (shard.go).
	objects cache.Cache
	engine  *desired.Engine
	events  eventRecorder
	Options Options

	ctrl    controller.Controller
	mgr     ctrl.Manager
	watchMu sync.Mutex
	watched map[schema.GroupVersionKind]bool
	// remotes are the destination clusters besides this one.
	remotes remotes

	verifyMu sync.Mutex
	verified map[types.NamespacedName]verification
	// superseded: per app, the resourceVersion its last status write
	// replaced; a cached copy still at it is older than what this
	// controller wrote, and a reconcile from it would redo the sync.
	superseded map[types.NamespacedName]superseded
	models     modelState
	notes      notes

	// later requeues apps whose reconcile ended in a terminal error at
	// the next poll.
	laterMu sync.Mutex
	later   map[types.NamespacedName]*time.Timer
	laterCh chan event.GenericEvent
	// urgentCh wakes apps ahead of the queue (heads.go).
	urgentCh chan event.TypedGenericEvent[*v1alpha1.Application]
	heads    heads

	// refreshNext: apps whose next reconcile fetches (a revert was pushed).
	refreshMu   sync.Mutex
	refreshNext map[types.NamespacedName]bool
}

// Renders is how many renders the reconciler's renderer ran (benchmarks).
func (r *ApplicationReconciler) Renders() int64 { return r.engine.Renderer.Renders() }

// Engine is the desired-state engine the reconciler uses; `mlcd up`'s
// bootstrap renders its root manifests with it.
func (r *ApplicationReconciler) Engine() *desired.Engine { return r.engine }

// Applier is the reconciler's applier.
func (r *ApplicationReconciler) Applier() *apply.Applier { return r.applier }

// setup registers the reconciler; readOnly sets up the engine without
// reconciling (an API server's diffs).
func (r *ApplicationReconciler) setup(mgr ctrl.Manager, readOnly bool) error {
	if r.Options.PollInterval == 0 {
		r.Options.PollInterval = v1alpha1.DefaultPollInterval
	}
	if r.Options.MaxConcurrentReconciles <= 0 {
		r.Options.MaxConcurrentReconciles = DefaultConcurrency
	}
	if r.Options.ControllerNamespace == "" {
		r.Options.ControllerNamespace = v1alpha1.DefaultControlPlaneNamespace
	}
	if r.Options.Recorder == nil {
		r.Options.Recorder = nopRecorder{}
	}
	r.watched = map[schema.GroupVersionKind]bool{}
	r.verified = map[types.NamespacedName]verification{}
	r.superseded = map[types.NamespacedName]superseded{}
	r.later = map[types.NamespacedName]*time.Timer{}
	r.laterCh = make(chan event.GenericEvent, 1024)
	r.urgentCh = make(chan event.TypedGenericEvent[*v1alpha1.Application], 1024)
	r.heads.seen = map[string]string{}
	r.models = modelState{resolved: map[string]*registry.ModelVersion{}, writtenBack: map[string]string{}}
	r.mgr = mgr
	if err := r.startRemotes(mgr); err != nil {
		return err
	}
	if readOnly {
		return nil // the engine only (diffs for an API server): no reconciles
	}
	// Transient failures back off from half a second to five minutes.
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](500*time.Millisecond, 5*time.Minute)
	c, err := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Application{}).
		WatchesRawSource(source.Channel(r.laterCh, &handler.EnqueueRequestForObject{})).
		WatchesRawSource(source.Channel(r.urgentCh, urgentHandler())).
		// A person's rollout action (`mlcd rollout promote|abort|retry`)
		// wakes the app the ModelRollout is named after.
		Watches(&v1alpha1.ModelRollout{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if o.GetAnnotations()[v1alpha1.RolloutActionAnnotation] == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}}
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles, SkipNameValidation: ptr(true), RateLimiter: limiter}).
		Build(r)
	if err != nil {
		return err
	}
	r.ctrl = c
	return nil
}

// requeueAfter reconciles the app again after d, also when this reconcile
// returns a terminal error (which controller-runtime does not requeue).
func (r *ApplicationReconciler) requeueAfter(key types.NamespacedName, d time.Duration) {
	r.laterMu.Lock()
	defer r.laterMu.Unlock()
	if t, ok := r.later[key]; ok {
		t.Reset(d)
		return
	}
	r.later[key] = time.AfterFunc(d, func() {
		r.laterMu.Lock()
		delete(r.later, key)
		r.laterMu.Unlock()
		app := &v1alpha1.Application{}
		app.Namespace, app.Name = key.Namespace, key.Name
		select {
		case r.laterCh <- event.GenericEvent{Object: app}:
		default: // the queue is full of requeues already
		}
	})
}

// watch starts, once per kind, a watch on managed objects that requeues
// their app on any change, so drift is seen within seconds.
func (r *ApplicationReconciler) watch(gvk schema.GroupVersionKind) error {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	if r.watched[gvk] {
		return nil
	}
	if err := r.ctrl.Watch(kindSource(r.objects, gvk)); err != nil {
		return err
	}
	r.watched[gvk] = true
	return nil
}

// kindSource watches gvk in c: a change to an object an app deployed
// (its tracking annotation names the app) reconciles that app.
func kindSource(c cache.Cache, gvk schema.GroupVersionKind) source.Source {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gvk)
	return source.Kind(c, obj, handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, o *unstructured.Unstructured) []reconcile.Request {
		ns, name, ok := strings.Cut(o.GetAnnotations()[manifest.AppAnnotation], "/")
		if !ok {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
	}))
}

func (r *ApplicationReconciler) jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// pollAfter is when the app's repository is due for a fetch, so a commit
// is seen within about one interval however often events woke us.
func (r *ApplicationReconciler) pollAfter(repoURL string) time.Duration {
	next := r.Options.PollInterval
	if at := r.engine.Sources.FetchedAt(repoURL); !at.IsZero() {
		next -= time.Since(at)
	}
	if next < time.Second {
		next = time.Second
	}
	return r.jitter(next)
}

// repoCredentials for repoURL and an app of project, from the
// control-plane namespace.
func (r *ApplicationReconciler) repoCredentials(ctx context.Context, project, repoURL string) (gitsource.Credentials, error) {
	return repocreds.Lookup(ctx, r.client, r.Options.ControllerNamespace, project, repoURL)
}

func ptr[T any](v T) *T { return &v }
