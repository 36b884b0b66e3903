package controller

import (
	"context"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/inventory"
	"github.com/mlcd-dev/mlcd/internal/manifest"
)

var resourceFinalizers = []string{v1alpha1.ResourcesFinalizer, v1alpha1.ResourcesFinalizerForeground, v1alpha1.ResourcesFinalizerBackground}

// finalize handles a deleted Application as Argo CD does: with a
// resources finalizer, its managed resources — those in its inventory
// that still carry its tracking annotation — are deleted before the
// finalizer is removed (the foreground variants wait until they are
// gone); without one, they stay.
func (r *ApplicationReconciler) finalize(ctx context.Context, app *v1alpha1.Application) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(app)
	r.forget(key)
	i := slices.IndexFunc(app.Finalizers, func(f string) bool { return slices.Contains(resourceFinalizers, f) })
	if i < 0 {
		return ctrl.Result{}, nil
	}
	finalizer := app.Finalizers[i]
	// The resources are where the app deployed them; a cluster that does
	// not answer holds the deletion (retried) rather than lose track.
	ctx, serr := r.target(ctx, app, nil)
	if serr != nil {
		return ctrl.Result{}, serr
	}
	if err := r.deleteCanaries(ctx, app); err != nil {
		return ctrl.Result{}, err
	}
	inv := inventory.Objects(app.Status.Resources)
	live := make(liveSet, len(inv))
	for _, o := range inv {
		l, err := r.applierOf(ctx).Get(ctx, o)
		if err != nil {
			return ctrl.Result{}, err
		}
		live[manifest.Key(o)] = l
	}
	owned := inventory.Owned(app.Namespace+"/"+app.Name, inv, live)
	if len(owned) > 0 {
		propagation := metav1.DeletePropagationForeground
		if finalizer == v1alpha1.ResourcesFinalizerBackground {
			propagation = metav1.DeletePropagationBackground
		}
		var pending int
		var todo = owned[:0:0]
		for _, o := range owned {
			if o.GetDeletionTimestamp() == nil {
				todo = append(todo, o)
			}
			pending++
		}
		if len(todo) > 0 {
			r.event(app, eventNormal, "ResourcesDeleting", "deleting %d resources of the application (%s)", len(todo), finalizer)
			if _, err := r.applierOf(ctx).Delete(ctx, todo, propagation); err != nil {
				r.event(app, eventWarning, "ResourcesDeleteFailed", "%s", err)
				return ctrl.Result{}, err
			}
		}
		if finalizer != v1alpha1.ResourcesFinalizerBackground && pending > 0 {
			// Wait until they are gone (the cache shows it).
			return ctrl.Result{RequeueAfter: 500 * time.Millisecond}, nil
		}
	}
	before := app.DeepCopy()
	app.Finalizers = slices.Delete(app.Finalizers, i, i+1)
	if err := r.client.Patch(ctx, app, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}
