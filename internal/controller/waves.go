package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/health"
	"github.com/mlcd-dev/mlcd/internal/inventory"
	"github.com/mlcd-dev/mlcd/internal/manifest"
)

// Sync waves and hooks, as Argo CD runs them: PreSync hooks, then each
// wave of resources (with that wave's Sync hooks) applied and waited for
// until healthy, then prune, then PostSync hooks; a failed hook fails the
// operation and runs the SyncFail hooks. Such an operation spans
// reconciles: its progress is the app's operationState (phase Running,
// one result per object and hook), so a restarted controller continues
// it, and hooks run once per operation.

// DefaultSyncTimeout bounds a phased sync operation (a hook that never
// finishes fails it).
const DefaultSyncTimeout = 10 * time.Minute

// splitHooks separates hooks from resources; Skip hooks (and Helm's test,
// delete and rollback hooks) are dropped.
func splitHooks(objs []*unstructured.Unstructured) (resources, hooks []*unstructured.Unstructured) {
	for _, o := range objs {
		switch t := manifest.HookTypes(o); {
		case len(t) == 0:
			resources = append(resources, o)
		case slices.Contains(t, manifest.Skip):
		default:
			hooks = append(hooks, o)
		}
	}
	return resources, hooks
}

// phased reports whether the sync of in needs phases.
func (in syncInput) phased() bool { return len(in.hooks) > 0 || manifest.Phased(in.objs) }

// phasedRunning: a phased operation of revision sha is under way.
func phasedRunning(app *v1alpha1.Application, sha string) bool {
	st := app.Status.OperationState
	return st != nil && st.Phase == v1alpha1.PhaseRunning && st.SyncResult != nil && st.SyncResult.Revision == sha
}

// startPhased begins a phased operation when there is something to do: a
// new revision, a requested sync, or drift (self-heal). It then runs its
// first steps.
func (r *ApplicationReconciler) startPhased(ctx context.Context, app *v1alpha1.Application, run *syncRun, must bool) (*operation, *stepError) {
	in := run.in
	// The app may come from a cache that has not seen the operation this
	// controller started a moment ago: starting another would run its
	// hooks again. Ask the API server.
	fresh := &v1alpha1.Application{}
	if err := r.mgr.GetAPIReader().Get(ctx, run.key, fresh); err == nil && phasedRunning(fresh, in.sha) {
		return &operation{actions: map[string]apply.Action{}, replies: map[string]*unstructured.Unstructured{}}, nil
	}
	if !must {
		drift, err := r.applierOf(ctx).Diff(ctx, in.objs)
		if err != nil {
			return nil, failTransient(v1alpha1.ConditionComparisonError, "%s", err)
		}
		if len(drift) == 0 && len(run.stale) == 0 {
			return &operation{actions: map[string]apply.Action{}, replies: map[string]*unstructured.Unstructured{}}, nil
		}
	}
	// An object another app deploys stops the whole phased operation
	// before any hook runs: waves and hooks assume all of the app's
	// objects are its own.
	if _, claimed := r.unclaimed(ctx, app, in.objs, run.live); len(claimed) > 0 {
		msg := claimedMessage(claimed)
		r.event(app, eventWarning, "SharedResource", "%s", msg)
		return nil, refusePermanent(v1alpha1.ConditionSyncError, "%s", msg)
	}
	state := &v1alpha1.OperationState{Phase: v1alpha1.PhaseRunning, StartedAt: metav1.Now(), Operation: app.Operation,
		SyncResult: &v1alpha1.SyncOperationResult{Revision: in.sha}}
	if state.Operation == nil {
		state.Operation = &v1alpha1.Operation{Sync: &v1alpha1.SyncOperation{Revision: in.sha, Prune: app.PruneEnabled()}, InitiatedBy: v1alpha1.OperationInitiator{Automated: true}}
	}
	if prev := app.Status.OperationState; prev != nil && prev.Phase == v1alpha1.PhaseFailed && lastSyncedRevision(app) == in.sha {
		state.RetryCount = prev.RetryCount + 1
	}
	app.Status.OperationState = state
	r.event(app, eventNormal, "SyncStarted", "syncing %s in phases (%d resources in waves %v, %d hooks)", v1alpha1.ShortSHA(in.sha), len(in.objs), manifest.Waves(in.objs), len(in.hooks))
	if dest := app.Spec.Destination.Namespace; dest != "" && app.HasSyncOption("CreateNamespace=true") {
		if err := r.applierOf(ctx).EnsureNamespace(ctx, dest); err != nil {
			return nil, r.failPhased(ctx, app, run, err.Error())
		}
	}
	return r.continuePhased(ctx, app, run)
}

// continuePhased moves a running phased operation as far as it can now.
func (r *ApplicationReconciler) continuePhased(ctx context.Context, app *v1alpha1.Application, run *syncRun) (*operation, *stepError) {
	st := app.Status.OperationState
	op := &operation{actions: map[string]apply.Action{}, replies: map[string]*unstructured.Unstructured{}}
	if timeout := r.syncTimeout(); time.Since(st.StartedAt.Time) > timeout {
		return nil, r.failPhased(ctx, app, run, fmt.Sprintf("sync operation timed out after %s: %s", timeout, st.Message))
	}
	waiting := func(msg string) (*operation, *stepError) {
		st.Message = msg
		return op, nil
	}
	// PreSync hooks.
	if msg, failed, serr := r.runHooks(ctx, app, run, manifest.PreSync, nil); serr != nil {
		return nil, serr
	} else if failed != "" {
		return nil, r.failPhased(ctx, app, run, failed)
	} else if msg != "" {
		return waiting(msg)
	}
	// Each wave: its resources and Sync hooks, then wait until healthy.
	syncHooks := manifest.HooksOf(run.in.hooks, manifest.Sync)
	for _, w := range manifest.Waves(append(slices.Clone(run.in.objs), syncHooks...)) {
		objs := manifest.InWave(run.in.objs, w)
		var todo []*unstructured.Unstructured
		for _, o := range objs {
			if resultOf(st, o, manifest.Sync) == nil {
				todo = append(todo, o)
			}
		}
		if len(todo) > 0 {
			if err := r.recordIntent(ctx, app, todo); err != nil {
				return nil, r.failPhased(ctx, app, run, err.Error())
			}
			applied, err := r.applierOf(ctx).Apply(ctx, todo, run.live)
			for _, a := range applied {
				if a.Object == nil {
					continue
				}
				res := resourceResult(a.Object, a.Action, a.Message)
				res.SyncPhase = manifest.Sync
				st.SyncResult.Resources = append(st.SyncResult.Resources, res)
				op.actions[manifest.Key(a.Object)] = a.Action
				if a.Live != nil {
					op.replies[manifest.Key(a.Object)] = a.Live
				}
				op.changed = op.changed || a.Action.Changed()
			}
			if err != nil {
				return nil, r.failPhased(ctx, app, run, err.Error())
			}
			return waiting(fmt.Sprintf("wave %d: applied %d resources; waiting for them to be healthy", w, len(todo)))
		}
		if msg, failed, serr := r.runHooks(ctx, app, run, manifest.Sync, &w); serr != nil {
			return nil, serr
		} else if failed != "" {
			return nil, r.failPhased(ctx, app, run, failed)
		} else if msg != "" {
			return waiting(msg)
		}
		var notReady []string
		for _, o := range objs {
			if h := health.Of(run.live.of(o)); h.Status != v1alpha1.HealthHealthy {
				notReady = append(notReady, fmt.Sprintf("%s %s (%s)", o.GetKind(), o.GetName(), strings.ToLower(h.Status)))
			}
		}
		if len(notReady) > 0 {
			return waiting(fmt.Sprintf("wave %d: waiting for %s", w, strings.Join(notReady, ", ")))
		}
	}
	// Prune what Git no longer holds, later waves first.
	if app.PruneEnabled() && len(run.stale) > 0 {
		stale := slices.Clone(run.stale)
		slices.SortStableFunc(stale, func(a, b *unstructured.Unstructured) int { return manifest.Wave(b) - manifest.Wave(a) })
		pruned, err := r.pruneStale(ctx, app, op, stale, run.live)
		for i := range pruned {
			pruned[i].SyncPhase = manifest.Sync
		}
		st.SyncResult.Resources = append(st.SyncResult.Resources, pruned...)
		if err != nil {
			return nil, r.failPhased(ctx, app, run, err.Error())
		}
	}
	// PostSync hooks, once everything is healthy.
	if msg, failed, serr := r.runHooks(ctx, app, run, manifest.PostSync, nil); serr != nil {
		return nil, serr
	} else if failed != "" {
		return nil, r.failPhased(ctx, app, run, failed)
	} else if msg != "" {
		return waiting(msg)
	}
	r.endPhased(ctx, app, run, v1alpha1.PhaseSucceeded, fmt.Sprintf("successfully synced (%s)", summarize(st.SyncResult.Resources)))
	app.Status.History = inventory.AppendHistory(app.Status.History, v1alpha1.RevisionHistory{
		Revision: run.in.sha, DeployedAt: *st.FinishedAt, DeployStartedAt: &st.StartedAt, Source: recorded(*run.in.src),
	}, app.Spec.RevisionHistoryLimit)
	r.event(app, eventNormal, "SyncSucceeded", "synced %s: %s", v1alpha1.ShortSHA(run.in.sha), summarize(st.SyncResult.Resources))
	return op, nil
}

func (r *ApplicationReconciler) syncTimeout() time.Duration {
	if r.Options.SyncTimeout > 0 {
		return r.Options.SyncTimeout
	}
	return DefaultSyncTimeout
}

// resultOf is the operation's result for o in phase (nil: none yet).
func resultOf(st *v1alpha1.OperationState, o *unstructured.Unstructured, phase string) *v1alpha1.ResourceResult {
	gvk := o.GroupVersionKind()
	for i := range st.SyncResult.Resources {
		r := &st.SyncResult.Resources[i]
		if r.Group == gvk.Group && r.Kind == gvk.Kind && r.Namespace == o.GetNamespace() && r.Name == o.GetName() && r.SyncPhase == phase {
			return r
		}
	}
	return nil
}

// hookObject is the hook as this operation creates it: a generateName
// hook gets a name fixed for the operation.
func hookObject(h *unstructured.Unstructured, st *v1alpha1.OperationState) *unstructured.Unstructured {
	o := h.DeepCopy()
	if o.GetName() == "" && o.GetGenerateName() != "" {
		sum := sha256.Sum256([]byte(operationID(st) + o.GetGenerateName()))
		o.SetName(o.GetGenerateName() + hex.EncodeToString(sum[:])[:5])
		o.SetGenerateName("")
	}
	ann := o.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[operationAnnotation] = operationID(st)
	o.SetAnnotations(ann)
	return o
}

// operationAnnotation on a hook names the operation that created it.
const operationAnnotation = "mlcd.io/sync-operation"

// operationID identifies an operation by its start (as stored: seconds).
func operationID(st *v1alpha1.OperationState) string {
	sum := sha256.Sum256([]byte(st.StartedAt.UTC().Format(time.RFC3339)))
	return hex.EncodeToString(sum[:])[:10]
}

// runHooks runs the hooks of phase (of wave *only, when given), wave by
// wave: each is created once per operation (an earlier copy deleted first
// unless its delete policy says otherwise) and followed until it
// succeeds or fails. It returns what it waits for, or the failure.
func (r *ApplicationReconciler) runHooks(ctx context.Context, app *v1alpha1.Application, run *syncRun, phase string, only *int) (waiting, failed string, serr *stepError) {
	st := app.Status.OperationState
	hooks := manifest.HooksOf(run.in.hooks, phase)
	if only != nil {
		hooks = manifest.InWave(hooks, *only)
	}
	for _, w := range manifest.Waves(hooks) {
		var pending []string
		for _, h := range manifest.InWave(hooks, w) {
			o := hookObject(h, st)
			res := resultOf(st, o, phase)
			if res == nil {
				created, err := r.createHook(ctx, o)
				if err != nil {
					return "", "", failTransient(v1alpha1.ConditionSyncError, "%s hook %s %s: %s", phase, o.GetKind(), o.GetName(), err)
				}
				if !created {
					pending = append(pending, fmt.Sprintf("%s %s (deleting the previous one)", o.GetKind(), o.GetName()))
					continue
				}
				nr := resourceResult(o, apply.Created, "")
				nr.HookType, nr.HookPhase, nr.SyncPhase = phase, v1alpha1.PhaseRunning, phase
				st.SyncResult.Resources = append(st.SyncResult.Resources, nr)
				r.event(app, eventNormal, "HookCreated", "%s hook %s %s created", phase, o.GetKind(), o.GetName())
				pending = append(pending, fmt.Sprintf("%s %s", o.GetKind(), o.GetName()))
				continue
			}
			if res.HookPhase == v1alpha1.PhaseRunning {
				live, err := r.applierOf(ctx).GetDirect(ctx, o)
				if err != nil {
					return "", "", failTransient(v1alpha1.ConditionSyncError, "%s hook %s: %s", phase, o.GetName(), err)
				}
				res.HookPhase, res.Message = hookPhase(live)
			}
			switch res.HookPhase {
			case v1alpha1.PhaseFailed:
				return "", fmt.Sprintf("%s hook %s %s failed: %s", phase, o.GetKind(), o.GetName(), res.Message), nil
			case v1alpha1.PhaseRunning:
				pending = append(pending, fmt.Sprintf("%s %s", o.GetKind(), o.GetName()))
			}
		}
		if len(pending) > 0 {
			return fmt.Sprintf("%s wave %d: waiting for hook %s", phase, w, strings.Join(pending, ", ")), "", nil
		}
	}
	return "", "", nil
}

// createHook creates a hook; an existing copy from an earlier operation is
// deleted first (BeforeHookCreation) and false returned until it is gone.
func (r *ApplicationReconciler) createHook(ctx context.Context, o *unstructured.Unstructured) (bool, error) {
	live, err := r.applierOf(ctx).GetDirect(ctx, o)
	if err != nil {
		return false, err
	}
	if live != nil {
		if live.GetAnnotations()[operationAnnotation] == o.GetAnnotations()[operationAnnotation] && live.GetDeletionTimestamp() == nil {
			return true, nil // this operation's own (a reconcile from a stale copy recorded less)
		}
		if live.GetDeletionTimestamp() == nil {
			if err := r.clientOf(ctx).Delete(ctx, live, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				return false, err
			}
		}
		return false, nil
	}
	c := o.DeepCopy()
	c.SetResourceVersion("")
	if err := r.clientOf(ctx).Create(ctx, c); err != nil && !apierrors.IsAlreadyExists(err) {
		return false, err
	}
	return true, nil
}

// hookPhase is a live hook's phase: a Job by its Complete/Failed
// condition, a Pod by its phase, anything else by its health.
func hookPhase(live *unstructured.Unstructured) (string, string) {
	if live == nil {
		return v1alpha1.PhaseFailed, "the hook was deleted before it finished"
	}
	switch live.GroupVersionKind().GroupKind().String() {
	case "Job.batch":
		conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["status"] != "True" {
				continue
			}
			msg, _ := m["message"].(string)
			if reason, _ := m["reason"].(string); msg == "" {
				msg = reason
			}
			switch m["type"] {
			case "Complete":
				return v1alpha1.PhaseSucceeded, msg
			case "Failed":
				return v1alpha1.PhaseFailed, msg
			}
		}
		return v1alpha1.PhaseRunning, "job running"
	case "Pod":
		phase, _, _ := unstructured.NestedString(live.Object, "status", "phase")
		switch phase {
		case "Succeeded":
			return v1alpha1.PhaseSucceeded, ""
		case "Failed":
			msg, _, _ := unstructured.NestedString(live.Object, "status", "message")
			return v1alpha1.PhaseFailed, msg
		}
		return v1alpha1.PhaseRunning, "pod " + strings.ToLower(phase)
	}
	switch h := health.Of(live); h.Status {
	case v1alpha1.HealthHealthy:
		return v1alpha1.PhaseSucceeded, h.Message
	case v1alpha1.HealthDegraded:
		return v1alpha1.PhaseFailed, h.Message
	}
	return v1alpha1.PhaseRunning, ""
}

// failPhased fails the operation: the SyncFail hooks are created, hooks
// are deleted as their policies say, and the app says which step failed.
func (r *ApplicationReconciler) failPhased(ctx context.Context, app *v1alpha1.Application, run *syncRun, msg string) *stepError {
	st := app.Status.OperationState
	for _, h := range manifest.HooksOf(run.in.hooks, manifest.SyncFail) {
		o := hookObject(h, st)
		if resultOf(st, o, manifest.SyncFail) != nil {
			continue
		}
		if created, err := r.createHook(ctx, o); err == nil && created {
			nr := resourceResult(o, apply.Created, "")
			nr.HookType, nr.HookPhase, nr.SyncPhase = manifest.SyncFail, v1alpha1.PhaseRunning, manifest.SyncFail
			st.SyncResult.Resources = append(st.SyncResult.Resources, nr)
			r.event(app, eventNormal, "HookCreated", "SyncFail hook %s %s created", o.GetKind(), o.GetName())
		}
	}
	r.endPhased(ctx, app, run, v1alpha1.PhaseFailed, msg)
	r.event(app, eventWarning, "SyncFailed", "sync to %s failed: %s", v1alpha1.ShortSHA(run.in.sha), msg)
	return refusePermanent(v1alpha1.ConditionSyncError, "%s", msg)
}

// endPhased finishes the operation and applies the hooks' delete
// policies.
func (r *ApplicationReconciler) endPhased(ctx context.Context, app *v1alpha1.Application, run *syncRun, phase, msg string) {
	st := app.Status.OperationState
	now := metav1.Now()
	st.Phase, st.Message, st.FinishedAt = phase, msg, &now
	for _, h := range run.in.hooks {
		o := hookObject(h, st)
		policies := manifest.HookDeletePolicies(o)
		for _, t := range manifest.HookTypes(o) {
			res := resultOf(st, o, t)
			if res == nil {
				continue
			}
			if (res.HookPhase == v1alpha1.PhaseSucceeded && slices.Contains(policies, manifest.HookSucceeded)) ||
				(res.HookPhase == v1alpha1.PhaseFailed && slices.Contains(policies, manifest.HookFailed)) {
				if err := r.clientOf(ctx).Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) == nil {
					res.Message = strings.TrimSpace(res.Message + " (deleted by its delete policy)")
				}
			}
		}
	}
}
