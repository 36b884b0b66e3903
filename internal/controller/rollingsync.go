package controller

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/appset"
)

// ConditionRollingSync says an automated sync waits for an earlier step
// of its ApplicationSet's RollingSync.
const ConditionRollingSync = "RollingSyncWaiting"

// ownerSet is the RollingSync ApplicationSet that generated app (nil: none).
func (r *ApplicationReconciler) ownerSet(ctx context.Context, app *v1alpha1.Application) *v1alpha1.ApplicationSet {
	ref := metav1.GetControllerOf(app)
	if ref == nil || ref.Kind != "ApplicationSet" {
		return nil
	}
	set := &v1alpha1.ApplicationSet{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: ref.Name}, set); err != nil || set.UID != ref.UID || !appset.RollingSync(set) {
		return nil
	}
	return set
}

func (r *ApplicationReconciler) siblings(ctx context.Context, set *v1alpha1.ApplicationSet, ns string) ([]v1alpha1.Application, error) {
	var list v1alpha1.ApplicationList
	if err := r.client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.AppSetLabel: set.Name}); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// rollingSyncHold says why an automated sync of app to sha must wait for
// an earlier RollingSync step ("" when it may go).
func (r *ApplicationReconciler) rollingSyncHold(ctx context.Context, app *v1alpha1.Application, sha string) (string, error) {
	set := r.ownerSet(ctx, app)
	if set == nil {
		return "", nil
	}
	sibs, err := r.siblings(ctx, set, app.Namespace)
	if err != nil {
		return "", err
	}
	return appset.Hold(set, app, sibs, sha)
}

// nudgeSiblings wakes the other apps of the app's RollingSync set when its
// health or revision moved: a later step may go now.
func (r *ApplicationReconciler) nudgeSiblings(ctx context.Context, before, app *v1alpha1.Application) {
	if before.Status.Health.Status == app.Status.Health.Status && before.Status.Sync.Status == app.Status.Sync.Status && before.Status.Sync.Revision == app.Status.Sync.Revision {
		return
	}
	set := r.ownerSet(ctx, app)
	if set == nil {
		return
	}
	sibs, err := r.siblings(ctx, set, app.Namespace)
	if err != nil {
		return
	}
	for _, s := range sibs {
		if s.Name != app.Name {
			r.requeueAfter(types.NamespacedName{Namespace: s.Namespace, Name: s.Name}, 200*time.Millisecond)
		}
	}
}
