package controller

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/health"
	"github.com/mlcd-dev/mlcd/internal/manifest"
)

const defaultHistoryLimit = 10

// sync compares, applies and prunes as the sync policy says, then records
// health, inventory and history.
func (r *ApplicationReconciler) sync(ctx context.Context, app *v1alpha1.Application, src *v1alpha1.ApplicationSource, sha string, objs []*unstructured.Unstructured, gov *governed) (ctrl.Result, *stepError) {
	policy := app.Spec.SyncPolicy
	var auto *v1alpha1.SyncPolicyAutomated
	if policy != nil {
		auto = policy.Automated
	}

	desired := map[string]bool{}
	for _, o := range objs {
		desired[manifest.Key(o)] = true
	}
	// Stale: in the inventory (applied by mlcd before) but no longer rendered.
	var stale []*unstructured.Unstructured
	for _, rs := range app.Status.Resources {
		obj := inventoryObject(rs)
		if !desired[manifest.Key(obj)] {
			stale = append(stale, obj)
		}
	}
	if len(objs) == 0 && len(app.Status.Resources) > 0 && (auto == nil || !auto.AllowEmpty) {
		return ctrl.Result{}, fail(v1alpha1.ConditionSyncError, false, "the source rendered no resources at %s: refusing to prune all %d resources (set syncPolicy.automated.allowEmpty to allow)", shortSHA(sha), len(app.Status.Resources))
	}

	lastOp := app.Status.OperationState
	lastRevision := ""
	if lastOp != nil && lastOp.SyncResult != nil {
		lastRevision = lastOp.SyncResult.Revision
	}
	mayAutoSync := auto != nil && (sha != lastRevision || auto.SelfHeal || lastOp == nil || lastOp.Phase != v1alpha1.PhaseSucceeded)
	if mayAutoSync && lastOp != nil && lastOp.Phase != v1alpha1.PhaseSucceeded && lastRevision == sha {
		if wait, ok := retryWait(policy, lastOp); !ok {
			mayAutoSync = false // retries exhausted for this revision: wait for a new one
		} else if since := time.Since(finishedAt(lastOp)); since < wait {
			return ctrl.Result{RequeueAfter: wait - since}, nil
		}
	}

	// Live objects before comparing: their fingerprint says whether the
	// last comparison still holds.
	appKey := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	specHash := hashOf(app.Spec)
	fp, serr := r.fingerprint(ctx, objs)
	if serr != nil {
		return ctrl.Result{}, serr
	}
	needsPrune := auto != nil && auto.Prune && len(stale) > 0
	verified := !needsPrune && r.verifiedAs(appKey, sha, specHash, fp)

	var drift []apply.Result
	var pruned map[string]bool
	synced := false
	switch {
	case verified:
		// Nothing in Git, the app or the live objects moved: no dry run.
	case mayAutoSync:
		// Gate: a model version must pass its checks before anything is
		// applied; what runs stays as it is when it does not.
		if gov != nil {
			if serr := r.gateCheck(ctx, gov, objs); serr != nil {
				return ctrl.Result{}, serr
			}
		}
		// Server-side apply dry-runs each object and writes only those that
		// differ, so it doubles as the comparison.
		result, changed, created, serr := r.apply(ctx, app, sha, objs, stale, auto, sha != lastRevision || lastOp == nil)
		if serr != nil {
			r.forget(appKey)
			return ctrl.Result{RequeueAfter: nextRetry(policy, app.Status.OperationState)}, serr
		}
		pruned = result
		if changed || sha != lastRevision || lastOp == nil {
			appendHistory(app, sha, *src)
			r.recordRevert(ctx, app, src.RepoURL, sha, lastRevision)
		}
		synced = !changed
		if created != nil {
			// Everything was just created: the server's replies are the
			// comparison the next reconcile would otherwise dry-run.
			fp, synced = created, true
		}
	default:
		var err error
		if drift, err = r.Applier.Diff(ctx, objs); err != nil {
			return ctrl.Result{}, fail(v1alpha1.ConditionComparisonError, true, "%s", err)
		}
	}

	// Inventory, per-object status and health.
	var resources []v1alpha1.ResourceStatus
	var healths []v1alpha1.HealthStatus
	drifted := map[string]bool{}
	for _, d := range drift {
		drifted[manifest.Key(d.Object)] = true
	}
	for _, o := range objs {
		live, err := r.Applier.Get(ctx, o)
		if err != nil {
			return ctrl.Result{}, fail(v1alpha1.ConditionComparisonError, true, "read %s %s: %s", o.GetKind(), o.GetName(), err)
		}
		h := health.Of(live)
		healths = append(healths, h)
		st := v1alpha1.SyncStatusSynced
		if drifted[manifest.Key(o)] || live == nil {
			st = v1alpha1.SyncStatusOutOfSync
		}
		resources = append(resources, resourceStatus(o, st, &h))
	}
	outOfSync := len(drift) > 0
	for _, o := range stale {
		if pruned[manifest.Key(o)] {
			continue
		}
		live, err := r.Applier.Get(ctx, o)
		if err != nil || live == nil {
			continue // already gone: drop it from the inventory
		}
		outOfSync = true
		resources = append(resources, resourceStatus(o, v1alpha1.SyncStatusOutOfSync, nil))
	}
	app.Status.Resources = resources
	app.Status.Health = health.Worst(healths)
	app.Status.Sync = v1alpha1.SyncStatus{
		Status:     v1alpha1.SyncStatusSynced,
		Revision:   sha,
		ComparedTo: v1alpha1.ComparedTo{Source: *src, Destination: app.Spec.Destination},
	}
	if outOfSync {
		app.Status.Sync.Status = v1alpha1.SyncStatusOutOfSync
	}
	if !outOfSync && (verified || synced || (!mayAutoSync && len(drift) == 0)) {
		r.remember(appKey, sha, specHash, fp)
	} else if outOfSync {
		r.forget(appKey)
	}
	clearConditions(app, v1alpha1.ConditionComparisonError, v1alpha1.ConditionInvalidSpecError, v1alpha1.ConditionSyncError)
	clearConditions(app, ConditionModelGate)
	if gov != nil && !outOfSync && app.Status.Health.Status == v1alpha1.HealthHealthy {
		r.writeBack(ctx, app, gov, sha)
	}
	if app.Status.Health.Status == v1alpha1.HealthProgressing {
		return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
	}
	// Poll: come back when the repository is due for a fetch, so a commit
	// is seen within about one interval however often events woke us.
	next := r.Options.PollInterval
	if at := r.Sources.FetchedAt(src.RepoURL); !at.IsZero() {
		next -= time.Since(at)
	}
	if next < time.Second {
		next = time.Second
	}
	return ctrl.Result{RequeueAfter: r.jitter(next)}, nil
}

// apply runs one sync operation and records it in operationState.
//
// It reports whether anything was written; the operation is recorded in
// status only then, on failure, or when record is set (a new revision), so
// an app at rest writes nothing.
//
// When every object was created by this sync it also returns their
// fingerprints from the API server's replies.
func (r *ApplicationReconciler) apply(ctx context.Context, app *v1alpha1.Application, sha string, objs, stale []*unstructured.Unstructured, auto *v1alpha1.SyncPolicyAutomated, record bool) (map[string]bool, bool, map[string]string, *stepError) {
	started := metav1.Now()
	op := &v1alpha1.OperationState{Phase: v1alpha1.PhaseRunning, StartedAt: started}
	if prev := app.Status.OperationState; prev != nil && prev.Phase != v1alpha1.PhaseSucceeded && prev.SyncResult != nil && prev.SyncResult.Revision == sha {
		op.RetryCount = prev.RetryCount + 1
	}
	finish := func(phase, msg string, results []v1alpha1.ResourceResult) {
		now := metav1.Now()
		op.Phase, op.Message, op.FinishedAt = phase, msg, &now
		op.SyncResult = &v1alpha1.SyncOperationResult{Revision: sha, Resources: results}
		app.Status.OperationState = op
	}
	if dest := app.Spec.Destination.Namespace; dest != "" && app.HasSyncOption("CreateNamespace=true") {
		if err := r.Applier.EnsureNamespace(ctx, dest); err != nil {
			finish(v1alpha1.PhaseFailed, err.Error(), nil)
			return nil, false, nil, fail(v1alpha1.ConditionSyncError, true, "%s", err)
		}
	}
	applied, err := r.Applier.Apply(ctx, objs)
	changed := false
	results := make([]v1alpha1.ResourceResult, 0, len(applied))
	for _, a := range applied {
		if a.Object != nil {
			results = append(results, resourceResult(a.Object, a.Action, a.Message))
		}
		if a.Action != "unchanged" && a.Action != "skipped" {
			changed = true
		}
	}
	if err != nil {
		finish(v1alpha1.PhaseFailed, err.Error(), results)
		return nil, false, nil, fail(v1alpha1.ConditionSyncError, true, "%s", err)
	}
	pruned := map[string]bool{}
	if auto != nil && auto.Prune {
		var toPrune []*unstructured.Unstructured
		for _, o := range stale {
			live, err := r.Applier.Get(ctx, o)
			if err != nil {
				finish(v1alpha1.PhaseFailed, err.Error(), results)
				return nil, false, nil, fail(v1alpha1.ConditionSyncError, true, "read %s %s before pruning: %s", o.GetKind(), o.GetName(), err)
			}
			if live == nil {
				continue
			}
			if manifest.HasSyncOption(live, "Prune=false") {
				results = append(results, resourceResult(o, "skipped", "Prune=false"))
				continue
			}
			// Never delete what mlcd did not apply: the live object must
			// still carry this app's tracking annotation.
			if live.GetAnnotations()[manifest.AppAnnotation] != app.Namespace+"/"+app.Name {
				results = append(results, resourceResult(o, "skipped", "not managed by this application"))
				continue
			}
			toPrune = append(toPrune, live)
		}
		// PruneLast=true and the default both prune after every apply.
		if _, err := r.Applier.Prune(ctx, toPrune); err != nil {
			finish(v1alpha1.PhaseFailed, err.Error(), results)
			return nil, false, nil, fail(v1alpha1.ConditionSyncError, true, "%s", err)
		}
		for _, o := range toPrune {
			pruned[manifest.Key(o)] = true
			changed = true
			results = append(results, resourceResult(o, "pruned", ""))
		}
	}
	if changed || record {
		finish(v1alpha1.PhaseSucceeded, fmt.Sprintf("successfully synced (%d resources)", len(objs)), results)
	}
	var created map[string]string
	if len(pruned) == 0 {
		created, _ = createdFingerprint(objs, applied)
	}
	return pruned, changed, created, nil
}

func appendHistory(app *v1alpha1.Application, sha string, src v1alpha1.ApplicationSource) {
	var id int64
	if n := len(app.Status.History); n > 0 {
		id = app.Status.History[n-1].ID + 1
	}
	op := app.Status.OperationState
	app.Status.History = append(app.Status.History, v1alpha1.RevisionHistory{
		ID: id, Revision: sha, DeployedAt: *op.FinishedAt, DeployStartedAt: &op.StartedAt, Source: src,
	})
	limit := int64(defaultHistoryLimit)
	if app.Spec.RevisionHistoryLimit != nil {
		limit = *app.Spec.RevisionHistoryLimit
	}
	if over := int64(len(app.Status.History)) - limit; over > 0 {
		app.Status.History = app.Status.History[over:]
	}
}

func resourceStatus(o *unstructured.Unstructured, st string, h *v1alpha1.HealthStatus) v1alpha1.ResourceStatus {
	gvk := o.GroupVersionKind()
	return v1alpha1.ResourceStatus{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName(), Status: st, Health: h}
}

func resourceResult(o *unstructured.Unstructured, action, msg string) v1alpha1.ResourceResult {
	gvk := o.GroupVersionKind()
	return v1alpha1.ResourceResult{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName(), Status: action, Message: msg}
}

func inventoryObject(rs v1alpha1.ResourceStatus) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetGroupVersionKind(schema.GroupVersionKind{Group: rs.Group, Version: rs.Version, Kind: rs.Kind})
	o.SetNamespace(rs.Namespace)
	o.SetName(rs.Name)
	return o
}

func finishedAt(op *v1alpha1.OperationState) time.Time {
	if op.FinishedAt != nil {
		return op.FinishedAt.Time
	}
	return op.StartedAt.Time
}

// retryWait is how long to wait before retrying a failed sync of the same
// revision, and whether retries remain (syncPolicy.retry; limit 0 means no
// retry, a negative limit means forever, as in Argo CD).
func retryWait(policy *v1alpha1.SyncPolicy, op *v1alpha1.OperationState) (time.Duration, bool) {
	if policy == nil || policy.Retry == nil || policy.Retry.Limit == 0 {
		return 0, false
	}
	if policy.Retry.Limit > 0 && op.RetryCount >= policy.Retry.Limit {
		return 0, false
	}
	return backoff(policy.Retry.Backoff, op.RetryCount), true
}

func nextRetry(policy *v1alpha1.SyncPolicy, op *v1alpha1.OperationState) time.Duration {
	if wait, ok := retryWait(policy, op); ok {
		return wait
	}
	return 3 * time.Minute
}

func backoff(b *v1alpha1.Backoff, attempt int64) time.Duration {
	d, factor, max := 5*time.Second, int64(2), 3*time.Minute
	if b != nil {
		if v, err := time.ParseDuration(b.Duration); err == nil && v > 0 {
			d = v
		}
		if b.Factor != nil && *b.Factor > 0 {
			factor = *b.Factor
		}
		if v, err := time.ParseDuration(b.MaxDuration); err == nil && v > 0 {
			max = v
		}
	}
	for i := int64(0); i < attempt && d < max; i++ {
		d *= time.Duration(factor)
	}
	if d > max {
		d = max
	}
	return d
}
