package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/mlcd-dev/mlcd/internal/metrics"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// Recorder is told the outcome of every reconcile (metrics.Recorder).
type Recorder interface {
	Reconciled(app *v1alpha1.Application, o metrics.Outcome)
}

// GateRecorder, when the Recorder implements it, is told every gate
// evaluation's checks.
type GateRecorder interface {
	GateChecked(model, env string, checks map[string]bool)
}

// AnalysisRecorder, when the Recorder implements it, is told every
// canary analysis measurement.
type AnalysisRecorder interface {
	Measured(template, metric, phase string)
}

// GitRecorder, when the Recorder implements it, is told every request to
// a Git remote.
type GitRecorder interface {
	GitRequest(repo, requestType string, took time.Duration, err error)
}

// RenderRecorder, when the Recorder implements it, is told every render
// performed (cache misses).
type RenderRecorder interface {
	Rendered(sourceType string, took time.Duration)
}

// K8sRecorder, when the Recorder implements it, wraps the controller's
// Kubernetes transport to count each app's requests.
type K8sRecorder interface {
	K8sTransport(server string) func(http.RoundTripper) http.RoundTripper
}

// AppSetRecorder, when the Recorder implements it, is told every
// ApplicationSet reconcile.
type AppSetRecorder interface {
	AppSetReconciled(namespace, name string, took time.Duration)
}

type nopRecorder struct{}

func (nopRecorder) Reconciled(*v1alpha1.Application, metrics.Outcome) {}

// syncStatus of a failed step: Unknown when the desired state could not be
// computed, OutOfSync when it is known but was not applied.
type stepError struct {
	condition string
	msg       string
	transient bool
	sync      string
}

func (e *stepError) Error() string { return e.msg }

// A step fails in one of four ways: the comparison could not complete
// (sync status Unknown) or the desired state is known but not applied
// (OutOfSync); and the cause may pass by itself (transient: retried with
// backoff, a network failure) or needs a change in Git or the app
// (permanent: retried at the next poll).

// failTransient: the comparison could not complete, and may by itself.
func failTransient(condition, format string, args ...any) *stepError {
	return stepFailure(condition, true, v1alpha1.SyncStatusUnknown, format, args...)
}

// failPermanent: the comparison cannot complete until Git or the app
// changes.
func failPermanent(condition, format string, args ...any) *stepError {
	return stepFailure(condition, false, v1alpha1.SyncStatusUnknown, format, args...)
}

// refuseTransient: the desired state is known but not applied yet, for a
// reason that may pass by itself.
func refuseTransient(condition, format string, args ...any) *stepError {
	return stepFailure(condition, true, v1alpha1.SyncStatusOutOfSync, format, args...)
}

// refusePermanent: the desired state is known and refused until Git or
// the app changes.
func refusePermanent(condition, format string, args ...any) *stepError {
	return stepFailure(condition, false, v1alpha1.SyncStatusOutOfSync, format, args...)
}

func stepFailure(condition string, transient bool, sync, format string, args ...any) *stepError {
	return &stepError{condition: condition, transient: transient, sync: sync, msg: fmt.Sprintf(format, args...)}
}

// Reconcile is the outer shell: load the app, handle deletion, run the
// pipeline, and in a deferred step write status (only when it changed),
// emit events and record the outcome. A transient failure is returned as
// an error (controller-runtime backs off exponentially); one that needs a
// change in Git or the app is a terminal error, and the app is requeued at
// the next poll.
func (r *ApplicationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	if !r.namespaceWatched(req.Namespace) {
		return ctrl.Result{}, nil
	}
	app := &v1alpha1.Application{}
	if err := r.client.Get(ctx, req.NamespacedName, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.owns(app) {
		return ctrl.Result{}, nil // another shard's
	}
	if r.stale(app) {
		// The cache has not caught up with this controller's own last
		// write: working from it would sync again and lose the write.
		return ctrl.Result{RequeueAfter: 50 * time.Millisecond}, nil
	}
	if app.DeletionTimestamp != nil {
		return r.finalize(ctx, app)
	}
	started := time.Now()
	ctx = metrics.WithApp(ctx, app.Namespace, app.Name, app.Spec.Project)
	before := app.DeepCopy()
	res, serr := r.pipeline(ctx, app)

	var err error
	if serr != nil {
		log.FromContext(ctx).Info("application not synced", "app", app.Namespace+"/"+app.Name, "reason", serr.condition, "message", serr.msg)
		r.failed(ctx, app, serr)
		res, err = ctrl.Result{}, serr
		if !serr.transient {
			r.requeueAfter(req.NamespacedName, r.jitter(r.Options.PollInterval))
			err = reconcile.TerminalError(serr)
		}
	} else {
		clearConditions(app, errorConditions...)
	}
	r.nudgeSiblings(ctx, before, app)

	_, refresh := app.Annotations[v1alpha1.RefreshAnnotation]
	if refresh {
		delete(app.Annotations, v1alpha1.RefreshAnnotation)
	}
	if refresh || !equality.Semantic.DeepEqual(before.Status, app.Status) || !maps.Equal(before.Annotations, app.Annotations) {
		now := metav1.Now()
		app.Status.ReconciledAt = &now
		app.Status.ObservedAt = &now
		// Optimistic lock: a reconcile that started from a stale cached
		// copy must not overwrite newer status (history would lose entries).
		// The lock is the resourceVersion this reconcile last wrote or
		// read: its own inventory write before applying (recordIntent)
		// moved it, and locking on the first read would refuse every
		// sync's status as a conflict with itself.
		lock := before
		if app.ResourceVersion != before.ResourceVersion {
			lock = before.DeepCopy()
			lock.ResourceVersion = app.ResourceVersion
		}
		if perr := r.client.Patch(ctx, app, client.MergeFromWithOptions(lock, client.MergeFromWithOptimisticLock{})); perr == nil {
			r.wrote(req.NamespacedName, app.ResourceVersion, before.ResourceVersion, lock.ResourceVersion)
		} else {
			// What this reconcile learnt (the operation, history) is not
			// recorded: the next one must compare again, not trust the
			// remembered comparison, or the sync's record is lost.
			r.forget(req.NamespacedName)
			log.FromContext(ctx).V(1).Info("status write lost its race; reconciling again", "app", req.String(), "error", perr.Error())
			if apierrors.IsConflict(perr) || apierrors.IsNotFound(perr) {
				return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
			}
			return ctrl.Result{}, errors.Join(err, fmt.Errorf("write status: %w", perr))
		}
	}
	// Events only for what the status now says: a reconcile whose status
	// write lost its race emits nothing (the next one would emit it again).
	r.emit(before, app)
	o := metrics.Outcome{Duration: time.Since(started), Err: err, Synced: app.Status.OperationState != nil && !equality.Semantic.DeepEqual(before.Status.OperationState, app.Status.OperationState)}
	if serr != nil {
		o.Reason = serr.condition
	}
	r.Options.Recorder.Reconciled(app, o)
	log.FromContext(ctx).V(1).Info("reconciled", "app", app.Namespace+"/"+app.Name, "took", o.Duration.String(), "sync", app.Status.Sync.Status, "health", app.Status.Health.Status, "requeueAfter", res.RequeueAfter.String())
	return res, err
}

// errorConditions are the conditions a reconcile sets on failure; each
// reconcile removes those that no longer apply.
var errorConditions = []string{v1alpha1.ConditionComparisonError, v1alpha1.ConditionInvalidSpecError, v1alpha1.ConditionSyncError, v1alpha1.ConditionModelGate, ConditionRollingSync}

// failed records a failed step in status: its condition (and only it),
// the sync status it implies, and the live health of what runs.
func (r *ApplicationReconciler) failed(ctx context.Context, app *v1alpha1.Application, serr *stepError) {
	var others []string
	for _, c := range errorConditions {
		if c != serr.condition {
			others = append(others, c)
		}
	}
	clearConditions(app, others...)
	setCondition(app, serr.condition, serr.msg)
	app.Status.Sync.Status = serr.sync
	// Health is what runs: the inventory's live objects.
	if len(app.Status.Resources) == 0 {
		if app.Status.Health.Status == "" {
			app.Status.Health = v1alpha1.HealthStatus{Status: v1alpha1.HealthUnknown}
		}
		return
	}
	if h, ok := r.inventoryHealth(ctx, app); ok {
		app.Status.Health = h
	}
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
		keep := true
		for _, t := range types {
			if c.Type == t {
				keep = false
			}
		}
		if keep {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	app.Status.Conditions = out
}
