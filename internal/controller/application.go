package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/render"
	gitsource "github.com/mlcd-dev/mlcd/internal/source"
)

// RefreshAnnotation asks for an immediate fetch of the app's repository.
const RefreshAnnotation = "argocd.argoproj.io/refresh"

// Options configure the Application reconciler.
type Options struct {
	// PollInterval is how often a repository is fetched without a refresh
	// request. Default 3m; requeues are jittered ±10%.
	PollInterval time.Duration
	// AppNamespaces limits the namespaces whose Applications are read;
	// empty means all.
	AppNamespaces []string
	// ControllerNamespace also holds repository credential Secrets.
	ControllerNamespace string
	// MaxConcurrentReconciles defaults to DefaultConcurrency.
	MaxConcurrentReconciles int
	// Registry gates governed apps and receives write-backs; nil means
	// governed apps are not synced (fail closed).
	Registry ModelRegistry
}

// DefaultConcurrency is how many Applications are reconciled at once. A
// reconcile mostly waits on the API server; on the 2-core reference
// machine 1,000 cold apps sync fastest with about 48 (16: 100 s, 48:
// 76-84 s, 96: 89 s, see BenchmarkSyncApps).
const DefaultConcurrency = 48

// ApplicationReconciler syncs Applications.
type ApplicationReconciler struct {
	Client   client.Client
	Applier  *apply.Applier
	Sources  *gitsource.Cache
	Renderer *render.Renderer
	Options  Options

	ctrl    controller.Controller
	watchMu sync.Mutex
	watched map[schema.GroupVersionKind]bool

	verifyMu sync.Mutex
	verified map[types.NamespacedName]verification
	models   modelState
	mgr      ctrl.Manager
}

// SetupWithManager registers the reconciler.
func (r *ApplicationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Options.PollInterval == 0 {
		r.Options.PollInterval = 3 * time.Minute
	}
	if r.Options.MaxConcurrentReconciles <= 0 {
		r.Options.MaxConcurrentReconciles = DefaultConcurrency
	}
	r.watched = map[schema.GroupVersionKind]bool{}
	r.verified = map[types.NamespacedName]verification{}
	r.models = modelState{resolved: map[string]*registry.ModelVersion{}, writtenBack: map[string]string{}}
	r.mgr = mgr
	c, err := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Application{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles, SkipNameValidation: ptr(true)}).
		Build(r)
	if err != nil {
		return err
	}
	r.ctrl = c
	return nil
}

// watch starts, once per kind, a watch on managed objects that requeues
// their app on any change, so drift is seen within seconds.
func (r *ApplicationReconciler) watch(gvk schema.GroupVersionKind) error {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	if r.watched[gvk] {
		return nil
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gvk)
	h := handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, o *unstructured.Unstructured) []reconcile.Request {
		owner := o.GetAnnotations()[manifest.AppAnnotation]
		ns, name, ok := strings.Cut(owner, "/")
		if !ok {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
	})
	if err := r.ctrl.Watch(source.Kind(r.mgr.GetCache(), obj, h)); err != nil {
		return err
	}
	r.watched[gvk] = true
	return nil
}

func (r *ApplicationReconciler) namespaceAllowed(ns string) bool {
	return len(r.Options.AppNamespaces) == 0 || slices.Contains(r.Options.AppNamespaces, ns)
}

func (r *ApplicationReconciler) jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// Reconcile is the outer shell: load the app, run the pipeline, write
// status only when it changed.
func (r *ApplicationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if !r.namespaceAllowed(req.Namespace) {
		return ctrl.Result{}, nil
	}
	app := &v1alpha1.Application{}
	if err := r.Client.Get(ctx, req.NamespacedName, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if app.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	before := app.DeepCopy()
	result, err := r.reconcile(ctx, app)

	_, refresh := app.Annotations[RefreshAnnotation]
	if refresh {
		delete(app.Annotations, RefreshAnnotation)
	}
	if refresh || !equality.Semantic.DeepEqual(before.Status, app.Status) || before.Annotations[RevertedAnnotation] != app.Annotations[RevertedAnnotation] {
		now := metav1.Now()
		app.Status.ReconciledAt = &now
		// Optimistic lock: a reconcile that started from a stale cached
		// copy must not overwrite newer status (history would lose entries).
		if perr := r.Client.Patch(ctx, app, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); perr != nil {
			if apierrors.IsConflict(perr) || apierrors.IsNotFound(perr) {
				return ctrl.Result{Requeue: true}, nil
			}
			return ctrl.Result{}, errors.Join(err, fmt.Errorf("write status: %w", perr))
		}
	}
	return result, err
}

// stepError is a failed step: its condition type and whether it is
// transient (retry with backoff) or needs a change in Git (wait for poll).
type stepError struct {
	condition string
	msg       string
	transient bool
}

func (e *stepError) Error() string { return e.msg }

func fail(condition string, transient bool, format string, args ...any) *stepError {
	return &stepError{condition: condition, transient: transient, msg: fmt.Sprintf(format, args...)}
}

// reconcile is the straight pipeline; each step sets at most one failure.
func (r *ApplicationReconciler) reconcile(ctx context.Context, app *v1alpha1.Application) (ctrl.Result, error) {
	res, serr := r.pipeline(ctx, app)
	if serr != nil {
		log.FromContext(ctx).Info("application not synced", "app", app.Namespace+"/"+app.Name, "reason", serr.condition, "message", serr.msg)
		setCondition(app, serr.condition, serr.msg)
		if app.Status.Sync.Status == "" {
			app.Status.Sync.Status = v1alpha1.SyncStatusUnknown
		}
		if app.Status.Health.Status == "" {
			app.Status.Health.Status = v1alpha1.HealthUnknown
		}
		if serr.transient {
			return ctrl.Result{RequeueAfter: r.jitter(15 * time.Second)}, nil
		}
		return ctrl.Result{RequeueAfter: r.jitter(r.Options.PollInterval)}, nil
	}
	return res, nil
}

func (r *ApplicationReconciler) pipeline(ctx context.Context, app *v1alpha1.Application) (ctrl.Result, *stepError) {
	src := app.SourceOf()
	if src == nil || src.RepoURL == "" {
		return ctrl.Result{}, fail(v1alpha1.ConditionInvalidSpecError, false, "spec.source.repoURL is required")
	}
	dest := app.Spec.Destination

	// Gate: project rules before anything is read or written.
	proj, serr := r.project(ctx, app)
	if serr != nil {
		return ctrl.Result{}, serr
	}
	if err := proj.PermitsSource(src.RepoURL); err != nil {
		return ctrl.Result{}, fail(v1alpha1.ConditionInvalidSpecError, false, "%s", err)
	}
	if err := proj.PermitsDestination(dest); err != nil {
		return ctrl.Result{}, fail(v1alpha1.ConditionInvalidSpecError, false, "%s", err)
	}
	if !(dest.Server == v1alpha1.InClusterServer || (dest.Server == "" && dest.Name == "in-cluster")) {
		return ctrl.Result{}, fail(v1alpha1.ConditionInvalidSpecError, false, "destination %s is not a known cluster: mlcd syncs to the cluster it runs in (%s)", cmp.Or(dest.Server, dest.Name), v1alpha1.InClusterServer)
	}

	// Source.
	_, refresh := app.Annotations[RefreshAnnotation]
	creds, err := r.credentials(ctx, uniq(app.Namespace, r.Options.ControllerNamespace), src.RepoURL)
	if err != nil {
		return ctrl.Result{}, fail(v1alpha1.ConditionComparisonError, true, "read repository credentials: %s", err)
	}
	sha, err := r.Sources.Resolve(ctx, src.RepoURL, src.TargetRevision, creds, refresh)
	if err != nil {
		return ctrl.Result{}, fail(v1alpha1.ConditionComparisonError, !errors.Is(err, gitsource.ErrRevisionNotFound), "%s", err)
	}
	if slices.Contains(reverted(app), sha) {
		return ctrl.Result{}, fail(v1alpha1.ConditionComparisonError, false, "revision %s was rolled back by a revert commit and is not applied again (stale refresh?); push a new commit to deploy it", shortSHA(sha))
	}
	if serr := r.verifySignature(ctx, app, proj, src.RepoURL, sha); serr != nil {
		return ctrl.Result{}, serr
	}
	root, err := r.Sources.Checkout(ctx, src.RepoURL, sha)
	if err != nil {
		return ctrl.Result{}, fail(v1alpha1.ConditionComparisonError, true, "%s", err)
	}

	// Render.
	rendered, err := r.Renderer.Render(render.Input{Root: root, Revision: sha, Source: *src, AppName: app.Name, Namespace: dest.Namespace})
	if err != nil {
		return ctrl.Result{}, fail(v1alpha1.ConditionComparisonError, false, "rendering %s at %s: %s", src.Path, shortSHA(sha), err)
	}
	app.Status.SourceType = rendered.Type
	objs := rendered.Objects
	gov, serr := r.governance(ctx, app, root, src, rendered)
	if serr != nil {
		return ctrl.Result{}, serr
	}
	if gov != nil {
		if err := r.resolve(ctx, gov); err != nil && !errors.Is(err, registry.ErrNotFound) {
			// Without the run id the lineage is incomplete: the gate
			// below decides whether anything may be applied.
			log.FromContext(ctx).Info("model version not resolved", "app", app.Namespace+"/"+app.Name, "error", err.Error())
		}
		stampLineage(objs, gov, sha)
	}
	if err := r.Applier.Normalize(objs, dest.Namespace); err != nil {
		return ctrl.Result{}, fail(v1alpha1.ConditionComparisonError, false, "%s", err)
	}
	owner := app.Namespace + "/" + app.Name
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if err := proj.PermitsKind(gvk.Group, gvk.Kind, o.GetNamespace() != ""); err != nil {
			return ctrl.Result{}, fail(v1alpha1.ConditionInvalidSpecError, false, "%s", err)
		}
		if ns := o.GetNamespace(); ns != "" && ns != dest.Namespace {
			if err := proj.PermitsDestination(v1alpha1.ApplicationDestination{Server: dest.Server, Name: dest.Name, Namespace: ns}); err != nil {
				return ctrl.Result{}, fail(v1alpha1.ConditionInvalidSpecError, false, "%s %s: %s", gvk.Kind, o.GetName(), err)
			}
		}
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[manifest.InstanceLabel] = app.Name
		o.SetLabels(labels)
		ann := o.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[manifest.AppAnnotation] = owner
		o.SetAnnotations(ann)
		// A kind defined by a CRD of this source is watched from the
		// reconcile after the CRD is established.
		if !r.Applier.Known(o) {
			continue
		}
		if err := r.watch(gvk); err != nil {
			return ctrl.Result{}, fail(v1alpha1.ConditionComparisonError, true, "watch %s: %s", gvk.Kind, err)
		}
	}

	return r.sync(ctx, app, src, sha, objs, gov)
}

// project returns the app's AppProject; "default" exists implicitly.
func (r *ApplicationReconciler) project(ctx context.Context, app *v1alpha1.Application) (*v1alpha1.AppProject, *stepError) {
	name := app.Spec.Project
	if name == "" {
		name = v1alpha1.DefaultProject
	}
	proj := &v1alpha1.AppProject{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: app.Namespace, Name: name}, proj)
	if err == nil {
		return proj, nil
	}
	if apierrors.IsNotFound(err) && r.Options.ControllerNamespace != "" && r.Options.ControllerNamespace != app.Namespace {
		if err2 := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Options.ControllerNamespace, Name: name}, proj); err2 == nil {
			return proj, nil
		}
	}
	if apierrors.IsNotFound(err) {
		if name == v1alpha1.DefaultProject {
			return v1alpha1.Permissive(app.Namespace), nil
		}
		return nil, &stepError{condition: v1alpha1.ConditionInvalidSpecError, transient: true, msg: fmt.Sprintf("application references project %s which does not exist", name)}
	}
	return nil, fail(v1alpha1.ConditionComparisonError, true, "read project %s: %s", name, err)
}

func uniq(a, b string) []string {
	if b == "" || a == b {
		return []string{a}
	}
	return []string{a, b}
}

func shortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

func setCondition(app *v1alpha1.Application, typ, msg string) {
	for i, c := range app.Status.Conditions {
		if c.Type == typ {
			if c.Message != msg {
				now := metav1.Now()
				app.Status.Conditions[i] = v1alpha1.ApplicationCondition{Type: typ, Message: msg, LastTransitionTime: &now}
			}
			return
		}
	}
	now := metav1.Now()
	app.Status.Conditions = append(app.Status.Conditions, v1alpha1.ApplicationCondition{Type: typ, Message: msg, LastTransitionTime: &now})
}

func clearConditions(app *v1alpha1.Application, types ...string) {
	out := app.Status.Conditions[:0]
	for _, c := range app.Status.Conditions {
		if !slices.Contains(types, c.Type) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	app.Status.Conditions = out
}

func ptr[T any](v T) *T { return &v }
