package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/desired"
	"github.com/mlcd-dev/mlcd/internal/health"
	"github.com/mlcd-dev/mlcd/internal/inventory"
	"github.com/mlcd-dev/mlcd/internal/manifest"
)

// operation is what one sync operation did.
type operation struct {
	actions map[string]apply.Action
	// replies are the API server's copies of objects this sync created.
	replies map[string]*unstructured.Unstructured
	changed bool
	// created: every object was created by this sync; their fingerprints.
	created map[string]string
	// last are the PruneLast objects left for after the app is healthy.
	last []*unstructured.Unstructured
}

// action is what the operation did to o ("" when there was none).
func (op *operation) action(o *unstructured.Unstructured) apply.Action {
	if op == nil {
		return ""
	}
	return op.actions[manifest.Key(o)]
}

// operate runs one sync operation — CreateNamespace, apply, prune — and
// records it in operationState (phase, message, revision, per-object
// results) and as Events.
//
// The operation is recorded only when it wrote something, failed, or
// synced a new revision, so an app at rest writes nothing.
func (r *ApplicationReconciler) operate(ctx context.Context, app *v1alpha1.Application, in syncInput, stale []*unstructured.Unstructured, live liveSet, newRevision bool) (*operation, *stepError) {
	op := &operation{actions: map[string]apply.Action{}, replies: map[string]*unstructured.Unstructured{}}
	state := &v1alpha1.OperationState{Phase: v1alpha1.PhaseRunning, StartedAt: metav1.Now(), Operation: app.Operation}
	if state.Operation == nil {
		state.Operation = &v1alpha1.Operation{Sync: &v1alpha1.SyncOperation{Revision: in.sha, Prune: app.PruneEnabled()}, InitiatedBy: v1alpha1.OperationInitiator{Automated: true}}
	}
	if prev := app.Status.OperationState; prev != nil && prev.Phase != v1alpha1.PhaseSucceeded && lastSyncedRevision(app) == in.sha {
		state.RetryCount = prev.RetryCount + 1
	}
	var results []v1alpha1.ResourceResult
	finish := func(phase, msg string) {
		now := metav1.Now()
		state.Phase, state.Message, state.FinishedAt = phase, msg, &now
		state.SyncResult = &v1alpha1.SyncOperationResult{Revision: in.sha, Resources: results}
		app.Status.OperationState = state
	}
	failed := func(err error) *stepError {
		finish(v1alpha1.PhaseFailed, err.Error())
		r.event(app, eventWarning, "SyncFailed", "sync to %s failed: %s", v1alpha1.ShortSHA(in.sha), err)
		return refuseTransient(v1alpha1.ConditionSyncError, "%s", err)
	}
	if newRevision {
		r.event(app, eventNormal, "SyncStarted", "syncing %s (%d resources)", v1alpha1.ShortSHA(in.sha), len(in.objs))
	}
	if dest := app.Spec.Destination.Namespace; dest != "" && app.HasSyncOption("CreateNamespace=true") {
		if err := r.applierOf(ctx).EnsureNamespace(ctx, dest); err != nil {
			return nil, failed(err)
		}
	}
	objs := in.objs
	if len(in.held) > 0 {
		objs = nil
		for _, o := range in.objs {
			if !in.held[manifest.Key(o)] {
				objs = append(objs, o)
			}
		}
	}
	objs, claimed := r.unclaimed(ctx, app, objs, live)
	if err := r.recordIntent(ctx, app, objs); err != nil {
		return nil, failed(err)
	}
	applied, err := r.applierOf(ctx).Apply(ctx, objs, live)
	for _, a := range applied {
		if a.Object == nil {
			continue
		}
		results = append(results, resourceResult(a.Object, a.Action, a.Message))
		op.actions[manifest.Key(a.Object)] = a.Action
		if a.Live != nil {
			op.replies[manifest.Key(a.Object)] = a.Live
		}
		op.changed = op.changed || a.Action.Changed()
	}
	if err != nil {
		return nil, failed(err)
	}
	if len(claimed) > 0 {
		// Two apps deploying one object would overwrite each other at
		// every sync: the one that came second leaves it alone and says so
		// (and prunes nothing while it is out of sync).
		// The operation applied what it may (its phase says so); the
		// app is not Synced and says why, and with selfHeal the next
		// reconcile looks again (an owner that goes away is adopted).
		for _, c := range claimed {
			results = append(results, resourceResult(c.obj, apply.Skipped, "managed by application "+c.owner))
		}
		msg := claimedMessage(claimed)
		finish(v1alpha1.PhaseSucceeded, fmt.Sprintf("synced all but %d object(s) another application manages (%s)", len(claimed), summarize(results)))
		r.event(app, eventWarning, "SharedResource", "%s", msg)
		return nil, refusePermanent(v1alpha1.ConditionSyncError, "%s", msg)
	}
	if app.PruneEnabled() {
		pruned, err := r.pruneStale(ctx, app, op, stale, live)
		results = append(results, pruned...)
		if err != nil {
			return nil, failed(err)
		}
	}
	if op.changed || newRevision {
		finish(v1alpha1.PhaseSucceeded, fmt.Sprintf("successfully synced (%s)", summarize(results)))
		r.event(app, eventNormal, "SyncSucceeded", "synced %s: %s", v1alpha1.ShortSHA(in.sha), summarize(results))
	}
	if fp, ok := createdFingerprint(in.objs, applied); ok && len(op.last) == 0 {
		op.created = fp
	}
	return op, nil
}

// pruneStale prunes the stale objects the app still owns (leaving
// Prune=false ones, and PruneLast ones for later) and returns their
// results.
func (r *ApplicationReconciler) pruneStale(ctx context.Context, app *v1alpha1.Application, op *operation, stale []*unstructured.Unstructured, live liveSet) ([]v1alpha1.ResourceResult, error) {
	_, approved := app.Annotations[v1alpha1.AnnotationDeletionApproved]
	plan := inventory.Prunable(app.Namespace+"/"+app.Name, stale, live, app.HasSyncOption("PruneLast=true"), approved)
	var results []v1alpha1.ResourceResult
	for _, s := range plan.Skipped {
		results = append(results, resourceResult(s.Object, apply.Skipped, s.Reason))
	}
	if len(plan.AwaitingApproval) > 0 {
		var names []string
		for _, o := range plan.AwaitingApproval {
			names = append(names, o.GetKind()+"/"+o.GetName())
		}
		setCondition(app, v1alpha1.ConditionDeletionApproval, fmt.Sprintf("%d object(s) wait for deletion approval before they are pruned: %s; approve with `kubectl annotate application %s -n %s %s=$(date -u +%%FT%%TZ)`",
			len(names), strings.Join(names, ", "), app.Name, app.Namespace, v1alpha1.AnnotationDeletionApproved))
	} else {
		clearConditions(app, v1alpha1.ConditionDeletionApproval)
	}
	op.last = plan.PruneLast
	pruned, err := r.applierOf(ctx).Prune(ctx, plan.Prune)
	usedApproval := false
	for _, p := range pruned {
		if p.Object != nil {
			msg := ""
			if l := live[manifest.Key(p.Object)]; l != nil {
				if health.IsManaged(l) && health.DeletionPolicy(l) == "Orphan" {
					msg = "deletionPolicy Orphan: the external resource is kept"
				} else if inventory.NeedsApproval(l) != "" {
					msg, usedApproval = "deleted with the app's deletion approval", true
				}
			}
			results = append(results, resourceResult(p.Object, p.Action, msg))
			op.actions[manifest.Key(p.Object)] = p.Action
			op.changed = true
		}
	}
	if usedApproval && err == nil {
		delete(app.Annotations, v1alpha1.AnnotationDeletionApproved) // consumed
	}
	return results, err
}

// pruneLast prunes the operation's PruneLast objects once every other
// object is applied and the app is Healthy; until then they stay in the
// inventory, out of sync.
func (r *ApplicationReconciler) pruneLast(ctx context.Context, app *v1alpha1.Application, op *operation, live liveSet, stale []*unstructured.Unstructured) *stepError {
	var last []*unstructured.Unstructured
	if op != nil {
		last = op.last
	} else if app.PruneEnabled() && len(stale) > 0 {
		// A later reconcile of the same operation: prune what waited.
		_, approved := app.Annotations[v1alpha1.AnnotationDeletionApproved]
		last = inventory.Prunable(app.Namespace+"/"+app.Name, stale, live, app.HasSyncOption("PruneLast=true"), approved).PruneLast
	}
	if len(last) == 0 || app.Status.Health.Status != v1alpha1.HealthHealthy {
		return nil
	}
	pruned, err := r.applierOf(ctx).Prune(ctx, last)
	if err != nil {
		return refuseTransient(v1alpha1.ConditionSyncError, "%s", err)
	}
	gone := map[string]bool{}
	for _, p := range pruned {
		if p.Object != nil && p.Action == apply.Pruned {
			gone[manifest.Key(p.Object)] = true
			if st := app.Status.OperationState; st != nil && st.SyncResult != nil {
				st.SyncResult.Resources = append(st.SyncResult.Resources, resourceResult(p.Object, apply.Pruned, "PruneLast"))
			}
		}
	}
	kept := app.Status.Resources[:0]
	outOfSync := false
	for _, rs := range app.Status.Resources {
		if gone[manifest.Key(inventory.Object(rs))] {
			continue
		}
		outOfSync = outOfSync || rs.Status == v1alpha1.SyncStatusOutOfSync
		kept = append(kept, rs)
	}
	app.Status.Resources = kept
	if !outOfSync {
		app.Status.Sync.Status = v1alpha1.SyncStatusSynced
	}
	r.event(app, eventNormal, "PrunedLast", "pruned %d resources last (PruneLast)", len(gone))
	return nil
}

// summarize counts results by action: "created 2, unchanged 1".
func summarize(results []v1alpha1.ResourceResult) string {
	counts := map[string]int{}
	var order []string
	for _, r := range results {
		if counts[r.Status] == 0 {
			order = append(order, r.Status)
		}
		counts[r.Status]++
	}
	parts := make([]string, 0, len(order))
	for _, a := range order {
		parts = append(parts, fmt.Sprintf("%s %d", a, counts[a]))
	}
	if len(parts) == 0 {
		return "no resources"
	}
	return strings.Join(parts, ", ")
}

func resourceResult(o *unstructured.Unstructured, action apply.Action, msg string) v1alpha1.ResourceResult {
	gvk := o.GroupVersionKind()
	return v1alpha1.ResourceResult{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName(), Status: string(action), Message: msg}
}

// recordIntent writes, before an apply may create objects the inventory
// does not list yet, an inventory that lists them too (as Flux writes its
// inventory): a controller killed between the apply and the status write
// leaves no object it cannot find again to prune. Only the inventory is
// written; the app's in-memory state keeps the new resourceVersion so the
// reconcile's own status write follows it.
func (r *ApplicationReconciler) recordIntent(ctx context.Context, app *v1alpha1.Application, objs []*unstructured.Unstructured) error {
	known := make(map[string]bool, len(app.Status.Resources))
	for _, rs := range app.Status.Resources {
		known[manifest.Key(inventory.Object(rs))] = true
	}
	var add []v1alpha1.ResourceStatus
	for _, o := range objs {
		if !known[manifest.Key(o)] {
			add = append(add, resourceStatus(o, v1alpha1.SyncStatusOutOfSync, &v1alpha1.HealthStatus{Status: v1alpha1.HealthMissing}))
		}
	}
	if len(add) == 0 {
		return nil
	}
	next := app.DeepCopy()
	next.Status.Resources = append(slices.Clone(app.Status.Resources), add...)
	if err := r.client.Patch(ctx, next, client.MergeFromWithOptions(app, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("record the inventory before applying: %w", err)
	}
	app.ResourceVersion = next.ResourceVersion
	return nil
}

// claim is a desired object another Application already deploys.
type claim struct {
	obj   *unstructured.Unstructured
	owner string
}

// unclaimed splits objs into those the app may apply and those whose live
// copy carries another existing app's tracking annotation. A live object's
// annotation is whatever its namespace's writers made it, so a claim is
// honoured only when the claiming app's inventory lists the object and its
// project permits it; otherwise (a tenant re-annotating an object to opt
// it out of the app that deploys it, or an owner deleted without its
// resources, or renamed) the claim counts for nothing and the object is
// adopted.
func (r *ApplicationReconciler) unclaimed(ctx context.Context, app *v1alpha1.Application, objs []*unstructured.Unstructured, live liveSet) ([]*unstructured.Unstructured, []claim) {
	self := app.Namespace + "/" + app.Name
	var mine []*unstructured.Unstructured
	var claimed []claim
	for _, o := range objs {
		if l := live.of(o); l != nil {
			if owner := l.GetAnnotations()[manifest.AppAnnotation]; owner != "" && owner != self {
				if r.claims(ctx, owner, o) {
					claimed = append(claimed, claim{obj: o, owner: owner})
					continue
				}
			}
		}
		mine = append(mine, o)
	}
	return mine, claimed
}

// claims reports whether the app owner (namespace/name) really deploys o:
// it exists (or cannot be read: no adoption on a transient error), its
// inventory lists o and its project permits o.
func (r *ApplicationReconciler) claims(ctx context.Context, owner string, o *unstructured.Unstructured) bool {
	ns, name, _ := strings.Cut(owner, "/")
	other := &v1alpha1.Application{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, other); err != nil {
		return !apierrors.IsNotFound(err)
	}
	listed := false
	key := manifest.Key(o)
	for _, rs := range other.Status.Resources {
		listed = listed || manifest.Key(inventory.Object(rs)) == key
	}
	if !listed {
		return false
	}
	proj, serr := r.projectOf(ctx, other)
	if serr != nil {
		return serr.transient // unreadable now: keep off until it can be checked
	}
	return desired.Permitted(proj, other.Spec.Destination, []*unstructured.Unstructured{o}) == nil
}

func claimedMessage(claimed []claim) string {
	parts := make([]string, len(claimed))
	for i, c := range claimed {
		parts[i] = fmt.Sprintf("%s %s is managed by application %s", c.obj.GetKind(), c.obj.GetName(), c.owner)
	}
	return strings.Join(parts, "; ") + ": two applications may not deploy the same object; remove it from one of them"
}
