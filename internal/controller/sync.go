package controller

import (
	"context"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/health"
	"github.com/mlcd-dev/mlcd/internal/inventory"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// syncInput is the desired state the sync works from.
type syncInput struct {
	src *v1alpha1.ApplicationSource
	sha string
	// revs are a multi-source app's revisions (sha joins them).
	revs []string
	objs []*unstructured.Unstructured
	// hooks are the source's hooks (not resources: never in the
	// inventory, run once per sync operation).
	hooks []*unstructured.Unstructured
	gov   *governed
	// root is the checkout (read only).
	root string
	// held are objects a canary rollout keeps from the apply (it writes
	// them itself).
	held map[string]bool
}

// liveSet maps object keys to live objects (nil: missing), read once per
// reconcile and shared by fingerprint, gate, health and prune.
type liveSet map[string]*unstructured.Unstructured

func (l liveSet) of(o *unstructured.Unstructured) *unstructured.Unstructured {
	return l[manifest.Key(o)]
}

// sync compares, applies and prunes as the sync policy says, then records
// health, inventory and history: a straight line of named steps.
func (r *ApplicationReconciler) sync(ctx context.Context, app *v1alpha1.Application, in syncInput) (ctrl.Result, *stepError) {
	run, res, serr := r.prepare(ctx, app, in)
	if serr != nil || run == nil {
		return res, serr
	}
	if serr := r.driveRollout(ctx, app, run); serr != nil {
		return ctrl.Result{}, serr
	}
	if rr := run.rollout; rr != nil && (len(rr.held) > 0 || rr.requeue > 0) {
		run.verified = false
		run.decision.autoSync = run.decision.autoSync || rr.sync
	}
	var drift []apply.Result
	var op *operation
	switch {
	case phasedRunning(app, in.sha):
		// A sync with waves or hooks under way: its next steps.
		run.verified = false
		if op, serr = r.continuePhased(ctx, app, run); serr != nil {
			return ctrl.Result{}, serr
		}
	case run.verified:
		// Nothing in Git, the app or the live objects moved: no dry run.
	case run.decision.autoSync:
		if op, serr = r.syncOperation(ctx, app, run); serr != nil {
			return ctrl.Result{}, serr
		}
	default:
		var err error
		if drift, err = r.applierOf(ctx).Diff(ctx, in.objs); err != nil {
			return ctrl.Result{}, failTransient(v1alpha1.ConditionComparisonError, "%s", err)
		}
	}
	outOfSync := r.observe(app, in, run.live, run.stale, drift, op)
	if showRollout(app, run.rollout) {
		outOfSync = true
	}
	if phasedRunning(app, in.sha) {
		// Not all of it is applied yet: out of sync until the operation ends.
		outOfSync = true
		app.Status.Sync.Status = v1alpha1.SyncStatusOutOfSync
		if h := app.Status.Health.Status; h == v1alpha1.HealthHealthy || h == v1alpha1.HealthMissing {
			// Later waves are missing because they are not due yet.
			app.Status.Health = v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: app.Status.OperationState.Message}
		}
	}
	if pending := r.pruneLast(ctx, app, op, run.live, run.stale); pending != nil {
		return ctrl.Result{}, pending
	}
	r.rememberComparison(run, op, drift, outOfSync)
	if !run.decision.autoSync && run.decision.exhausted && outOfSync {
		return ctrl.Result{}, refusePermanent(v1alpha1.ConditionSyncError, "sync of %s failed and its retries are exhausted: %s; push a new commit or sync by hand", v1alpha1.ShortSHA(in.sha), app.Status.OperationState.Message)
	}
	if in.gov != nil && !outOfSync && app.Status.Health.Status == v1alpha1.HealthHealthy {
		// The commit that deployed what runs, not the newest compared one:
		// a commit that did not change the app writes nothing more.
		deployed := app.DeployedRevision()
		r.writeBack(ctx, app, in.gov, deployed)
		r.recordNote(ctx, app, in.gov, in.src.RepoURL, in.src.TargetRevision, deployed)
		r.promoteAfterSoak(ctx, app, in.gov, in.src)
	}
	if rr := run.rollout; rr != nil && rr.requeue > 0 {
		return ctrl.Result{RequeueAfter: rr.requeue}, nil
	}
	if phasedRunning(app, in.sha) {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if app.Status.Health.Status == v1alpha1.HealthProgressing {
		return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
	}
	return ctrl.Result{RequeueAfter: r.pollAfter(in.src.RepoURL)}, nil
}

// syncRun is what one sync works with: the desired state, the live
// objects read once, the stale inventory entries and the policy's verdict.
type syncRun struct {
	in          syncInput
	key         types.NamespacedName
	stale       []*unstructured.Unstructured
	live        liveSet
	decision    syncDecision
	newRevision bool
	specHash    string
	fp          map[string]string
	verified    bool
	rollout     *rolloutRun
}

// prepare reads the live objects, applies the sync policy and says
// whether the last comparison still holds. A nil run with a result means
// "come back later" (a retry that is not due yet).
func (r *ApplicationReconciler) prepare(ctx context.Context, app *v1alpha1.Application, in syncInput) (*syncRun, ctrl.Result, *stepError) {
	auto := automated(app)
	run := &syncRun{in: in, key: types.NamespacedName{Namespace: app.Namespace, Name: app.Name}}
	run.stale = inventory.Stale(app.Status.Resources, in.objs)
	if len(in.objs) == 0 && len(app.Status.Resources) > 0 && (auto == nil || !auto.AllowEmpty) {
		return nil, ctrl.Result{}, refusePermanent(v1alpha1.ConditionSyncError, "the source rendered no resources at %s: refusing to prune all %d resources (set syncPolicy.automated.allowEmpty to allow)", v1alpha1.ShortSHA(in.sha), len(app.Status.Resources))
	}
	var serr *stepError
	if run.live, serr = r.readLive(ctx, in.objs, run.stale); serr != nil {
		return nil, ctrl.Result{}, serr
	}
	if serr := r.confirmMissing(ctx, app, slices.Concat(in.objs, run.stale), run.live); serr != nil {
		return nil, ctrl.Result{}, serr
	}
	run.newRevision = app.Status.OperationState == nil || lastSyncedRevision(app) != in.sha
	run.decision = decide(app, in.sha)
	if run.decision.wait > 0 {
		return nil, ctrl.Result{RequeueAfter: run.decision.wait}, nil
	}
	if err := respectOthers(app, in.objs, run.live, run.newRevision && run.decision.autoSync); err != nil {
		return nil, ctrl.Result{}, failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
	}
	run.specHash = hashOf(app.Spec)
	run.fp = fingerprints(in.objs, run.live)
	needsPrune := app.PruneEnabled() && len(run.stale) > 0
	run.verified = !needsPrune && !app.SyncRequested() && r.verifiedAs(run.key, in.sha, run.specHash, run.fp)
	return run, ctrl.Result{}, nil
}

// syncOperation gates a governed app's model version, runs the sync
// operation and records history (and the revisions a revert undid).
func (r *ApplicationReconciler) syncOperation(ctx context.Context, app *v1alpha1.Application, run *syncRun) (*operation, *stepError) {
	in := run.in
	if !app.SyncRequested() && run.newRevision {
		// An ApplicationSet's RollingSync: a later step waits for the
		// earlier ones (a sync someone asked for runs now).
		hold, err := r.rollingSyncHold(ctx, app, in.sha)
		if err != nil {
			return nil, failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
		}
		if hold != "" {
			return nil, refuseTransient(ConditionRollingSync, "%s", hold)
		}
	}
	if in.gov != nil {
		if serr := r.gateCheck(ctx, app, in.gov, in.objs, run.live); serr != nil {
			app.Operation = nil // a requested sync is refused, not queued
			return nil, serr
		}
	}
	if serr := r.startRollout(ctx, app, run); serr != nil {
		app.Operation = nil
		return nil, serr
	}
	if run.rollout != nil {
		in.held = run.rollout.held
	}
	running := runningVersion(in.objs, run.live)
	requested := app.SyncRequested()
	if in.phased() {
		// Waves or hooks: an operation over several reconciles, which
		// records its history when it succeeds.
		op, serr := r.startPhased(ctx, app, run, run.newRevision || requested)
		app.Operation = nil
		r.forget(run.key)
		return op, serr
	}
	op, serr := r.operate(ctx, app, in, run.stale, run.live, run.newRevision || requested)
	app.Operation = nil // run once; its outcome is in operationState
	if serr != nil {
		r.forget(run.key)
		return nil, serr
	}
	// History says which revisions were deployed: a sync that applied a
	// change of a new revision, or a requested one, adds an entry; a
	// commit that changed nothing the app renders does not (its newest
	// entry still names the commit that deployed what runs: lineage), nor
	// does a self-heal of the revision the newest entry already names.
	since := lastHistoryRevision(app) // the commits after it are new to the app
	if requested || (op.changed && since != in.sha) {
		app.Status.History = inventory.AppendHistory(app.Status.History, v1alpha1.RevisionHistory{
			Revision: in.sha, DeployedAt: *app.Status.OperationState.FinishedAt, DeployStartedAt: &app.Status.OperationState.StartedAt, Source: recorded(*in.src),
			Revisions: in.revs, Sources: multiSources(app, in),
		}, app.Spec.RevisionHistoryLimit)
	}
	// A new revision may hold revert commits (a canary's revert changes
	// nothing the abort had not already restored): they are recorded
	// whether or not the sync applied anything.
	if run.newRevision || requested {
		if r.recordRevert(ctx, app, in.src.RepoURL, in.sha, since) && running != "" && (in.gov == nil || running != in.gov.version) {
			if err := r.forgetReverted(ctx, app, running); err != nil {
				log.FromContext(ctx).Error(err, "reverted version still recorded healthy", "app", app.Namespace+"/"+app.Name, "version", running)
			}
		}
	}
	if op.created != nil {
		// Everything was just created: the server's replies are the
		// comparison the next reconcile would otherwise dry-run.
		run.fp = op.created
	}
	return op, nil
}

// rememberComparison keeps a comparison that found the app in sync, so
// the next reconcile needs no dry run while nothing moves.
func (r *ApplicationReconciler) rememberComparison(run *syncRun, op *operation, drift []apply.Result, outOfSync bool) {
	switch {
	case outOfSync:
		r.forget(run.key)
	case run.verified || (op != nil && (op.created != nil || !op.changed)) || (op == nil && len(drift) == 0):
		r.remember(run.key, run.in.sha, run.specHash, run.fp)
	}
}

// readLive reads every desired and stale object once (from the cache).
func (r *ApplicationReconciler) readLive(ctx context.Context, objs, stale []*unstructured.Unstructured) (liveSet, *stepError) {
	live := make(liveSet, len(objs)+len(stale))
	for _, set := range [][]*unstructured.Unstructured{objs, stale} {
		for _, o := range set {
			l, err := r.applierOf(ctx).Get(ctx, o)
			if err != nil {
				return nil, failTransient(v1alpha1.ConditionComparisonError, "read %s %s: %s", o.GetKind(), o.GetName(), err)
			}
			live[manifest.Key(o)] = l
		}
	}
	return live, nil
}

// confirmMissing reads past the cache the inventory objects the cache
// does not show: right after a sync created them the cache may lag, and a
// second "create" would be reported (and recorded in history) as a change
// — or, for an object the next commit removes, it would be called gone
// and dropped from the inventory unpruned, left running and unowned.
// Objects that are really gone stay missing (created again, or dropped).
func (r *ApplicationReconciler) confirmMissing(ctx context.Context, app *v1alpha1.Application, objs []*unstructured.Unstructured, live liveSet) *stepError {
	inInventory := map[string]bool{}
	for _, rs := range app.Status.Resources {
		inInventory[manifest.Key(inventory.Object(rs))] = true
	}
	for _, o := range objs {
		key := manifest.Key(o)
		if live[key] != nil || !inInventory[key] || !r.applierOf(ctx).Known(o) {
			continue
		}
		l, err := r.applierOf(ctx).GetDirect(ctx, o)
		if err != nil {
			return failTransient(v1alpha1.ConditionComparisonError, "read %s %s: %s", o.GetKind(), o.GetName(), err)
		}
		live[key] = l
	}
	return nil
}

func automated(app *v1alpha1.Application) *v1alpha1.SyncPolicyAutomated {
	if app.Spec.SyncPolicy == nil {
		return nil
	}
	return app.Spec.SyncPolicy.Automated
}

// syncDecision says whether this reconcile may run an automated sync.
type syncDecision struct {
	autoSync bool
	// wait > 0: a retry of a failed sync is due after wait.
	wait time.Duration
	// exhausted: the last sync of this revision failed and no retry is left.
	exhausted bool
}

// decide applies the sync policy: automated sync of a new revision, of
// drift with selfHeal, and retries of a failed sync of the same revision
// with backoff (syncPolicy.retry).
func decide(app *v1alpha1.Application, sha string) syncDecision {
	if app.SyncRequested() {
		return syncDecision{autoSync: true} // a sync someone asked for runs now
	}
	auto := automated(app)
	if auto == nil {
		return syncDecision{}
	}
	lastOp := app.Status.OperationState
	if lastOp == nil || lastSyncedRevision(app) != sha {
		return syncDecision{autoSync: true}
	}
	if lastOp.Phase == v1alpha1.PhaseRunning {
		return syncDecision{} // a phased operation continues on its own
	}
	if lastOp.Phase == v1alpha1.PhaseSucceeded {
		return syncDecision{autoSync: auto.SelfHeal}
	}
	wait, ok := retryWait(app.Spec.SyncPolicy, lastOp)
	if !ok {
		return syncDecision{exhausted: true}
	}
	if since := time.Since(finishedAt(lastOp)); since < wait {
		return syncDecision{wait: wait - since}
	}
	return syncDecision{autoSync: true}
}

func lastSyncedRevision(app *v1alpha1.Application) string {
	if op := app.Status.OperationState; op != nil && op.SyncResult != nil {
		return op.SyncResult.Revision
	}
	return ""
}

// observe records per-object status, the inventory and the app's health
// and sync status from the live objects (and this sync's writes). It
// reports whether the app is out of sync.
func (r *ApplicationReconciler) observe(app *v1alpha1.Application, in syncInput, live liveSet, stale []*unstructured.Unstructured, drift []apply.Result, op *operation) bool {
	drifted := map[string]bool{}
	for _, d := range drift {
		drifted[manifest.Key(d.Object)] = true
	}
	var resources []v1alpha1.ResourceStatus
	var healths []v1alpha1.HealthStatus
	for _, o := range in.objs {
		l := live.of(o)
		var h v1alpha1.HealthStatus
		switch a := op.action(o); {
		case a == apply.Created && op.replies[manifest.Key(o)] != nil:
			l = op.replies[manifest.Key(o)]
			h = health.Of(l)
		case a == apply.Configured:
			// Written just now: healthy only once the cluster shows it.
			h = v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: "applied; waiting for the cluster to observe the change"}
		default:
			h = health.Of(l)
		}
		healths = append(healths, h)
		st := v1alpha1.SyncStatusSynced
		if drifted[manifest.Key(o)] || (l == nil && op.action(o) != apply.Created) {
			st = v1alpha1.SyncStatusOutOfSync
		}
		resources = append(resources, resourceStatus(o, st, &h))
	}
	outOfSync := len(drift) > 0
	for _, o := range stale {
		if op.action(o) == apply.Pruned || live.of(o) == nil {
			continue // gone: dropped from the inventory
		}
		outOfSync = true
		resources = append(resources, resourceStatus(o, v1alpha1.SyncStatusOutOfSync, nil))
	}
	app.Status.Resources = resources
	app.Status.Health = health.Worst(healths)
	app.Status.Sync = v1alpha1.SyncStatus{
		Status:     v1alpha1.SyncStatusSynced,
		Revision:   in.sha,
		Revisions:  in.revs,
		ComparedTo: v1alpha1.ComparedTo{Source: recorded(*in.src), Destination: app.Spec.Destination},
	}
	if outOfSync {
		app.Status.Sync.Status = v1alpha1.SyncStatusOutOfSync
	}
	return outOfSync
}

// inventoryHealth is the live health of the app's inventory, for a
// reconcile that failed before it knew the desired state.
func (r *ApplicationReconciler) inventoryHealth(ctx context.Context, app *v1alpha1.Application) (v1alpha1.HealthStatus, bool) {
	var healths []v1alpha1.HealthStatus
	for i, rs := range app.Status.Resources {
		if rs.Health == nil {
			continue // stale entry: not part of what the app runs
		}
		l, err := r.applierOf(ctx).Get(ctx, inventory.Object(rs))
		if err != nil {
			return v1alpha1.HealthStatus{}, false
		}
		h := health.Of(l)
		app.Status.Resources[i].Health = &h
		healths = append(healths, h)
	}
	return health.Worst(healths), true
}

func resourceStatus(o *unstructured.Unstructured, st string, h *v1alpha1.HealthStatus) v1alpha1.ResourceStatus {
	gvk := o.GroupVersionKind()
	return v1alpha1.ResourceStatus{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName(), Status: st, Health: h}
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

// multiSources are the sources a multi-source app's history records.
func multiSources(app *v1alpha1.Application, in syncInput) []v1alpha1.ApplicationSource {
	if len(in.revs) == 0 {
		return nil
	}
	out := make([]v1alpha1.ApplicationSource, len(app.Spec.Sources))
	for i, s := range app.Spec.Sources {
		out[i] = recorded(s)
	}
	return out
}

// recorded is a source as status records it: a password written into the
// repository URL is dropped (status, history and events are read by
// everyone who may read the app).
func recorded(src v1alpha1.ApplicationSource) v1alpha1.ApplicationSource {
	src.RepoURL = source.RedactURL(src.RepoURL)
	return src
}

func lastHistoryRevision(app *v1alpha1.Application) string {
	if n := len(app.Status.History); n > 0 {
		return app.Status.History[n-1].Revision
	}
	return ""
}
