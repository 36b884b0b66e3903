package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/analysis"
	"github.com/mlcd-dev/mlcd/internal/inventory"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/rollout"
)

// The canary side of a rollout: `<name>-canary`, told apart from the
// stable pods by this label in its selector and pod template.
const (
	canarySuffix     = v1alpha1.CanarySuffix
	canaryLabel      = "mlcd.io/rollout-side"
	rolloutManager   = "mlcd-rollout"
	backgroundRun    = "background"
	watchRun         = "watch"
	maxRevertAttempt = 5
)

// rolloutRun is the rollout's part of one reconcile.
type rolloutRun struct {
	mr *v1alpha1.ModelRollout
	// held are the desired workloads the rollout keeps at their stable
	// template: not applied by this sync, shown OutOfSync.
	held map[string]bool
	// requeue: when the rollout wants to look again.
	requeue time.Duration
	// gpuPausedAt is when a GPUCapacity pause began (it is looked at
	// again at every reconcile and keeps its start).
	gpuPausedAt *metav1.Time
	// restoring: an InferenceService is not back on its stable spec yet.
	restoring bool
	// root is the reconcile's checkout (golden-set files).
	root string
	// sync: the rollout completed and the ordinary sync must apply the
	// new version now, whatever the sync policy (the canary waits for it).
	sync bool
}

func (rr *rolloutRun) holds(o *unstructured.Unstructured) bool {
	return rr != nil && rr.held[manifest.Key(o)]
}

func active(mr *v1alpha1.ModelRollout) bool {
	return mr.Status.Phase == rollout.PhaseProgressing || mr.Status.Phase == rollout.PhasePaused
}

// driveRollout moves a rollout that exists for the app's model version
// one step: it runs before the sync, so a held workload is not applied.
func (r *ApplicationReconciler) driveRollout(ctx context.Context, app *v1alpha1.Application, run *syncRun) *stepError {
	g := run.in.gov
	if g == nil {
		return nil
	}
	mr := &v1alpha1.ModelRollout{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, mr); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return failTransient(v1alpha1.ConditionComparisonError, "read ModelRollout: %s", err)
	}
	run.rollout = &rolloutRun{mr: mr, held: map[string]bool{}, root: run.in.root}
	switch g.version {
	case mr.Spec.CanaryVersion:
		return r.stepRollout(ctx, app, run)
	case mr.Spec.StableVersion:
		// Git names the stable version again (the revert, or a person):
		// the canary goes and the stable side takes its full scale.
		before := mr.DeepCopy()
		if active(mr) {
			r.finish(app, mr, rollout.PhaseDegraded, fmt.Sprintf("Git names the stable version %s again: rollout of %s ended", mr.Spec.StableVersion, mr.Spec.CanaryVersion))
		}
		sides, serr := r.sides(ctx, run)
		if serr != nil {
			return serr
		}
		if serr := r.removeCanaries(ctx, app, run, sides, true); serr != nil {
			return serr
		}
		return r.saveRollout(ctx, before, mr)
	}
	return nil // another version: startRollout replaces this rollout
}

// startRollout begins a rollout when the sync would change the model
// version of live Deployments and the environment rolls out by canary.
// It runs after the gate passed.
func (r *ApplicationReconciler) startRollout(ctx context.Context, app *v1alpha1.Application, run *syncRun) *stepError {
	g := run.in.gov
	if g == nil {
		return nil
	}
	spec, ok := g.policy.Spec.Rollout[g.env.Name]
	if !ok || spec.Canary == nil || len(spec.Canary.Steps) == 0 {
		return nil
	}
	if run.rollout != nil && run.rollout.mr.Spec.CanaryVersion == g.version {
		return nil // driven already
	}
	if run.rollout != nil && run.rollout.mr.Spec.StableVersion == g.version {
		return nil // back to the version the last rollout replaced (a revert): at once
	}
	var workloads []v1alpha1.RolloutWorkload
	stable := ""
	var prev *v1alpha1.ModelRollout
	if run.rollout != nil {
		prev = run.rollout.mr
	}
	for _, o := range run.in.objs {
		isvc := isInferenceService(o)
		if !isvc && (o.GetKind() != "Deployment" || o.GroupVersionKind().Group != "apps") {
			continue
		}
		l := run.live.of(o)
		if l == nil {
			continue
		}
		lv := l.GetAnnotations()[v1alpha1.AnnotationModelVersion]
		if lv == "" || lv == g.version {
			continue
		}
		stable = lv
		if isvc {
			w, err := stableInferenceService(l)
			if err != nil {
				return failPermanent(v1alpha1.ConditionSyncError, "InferenceService %s: %s", o.GetName(), err)
			}
			if prev != nil && active(prev) {
				for _, pw := range prev.Spec.Workloads {
					if pw.Kind == w.Kind && pw.Namespace == w.Namespace && pw.Name == w.Name {
						w = pw // the spec before the replaced rollout
					}
				}
			}
			workloads = append(workloads, w)
			continue
		}
		replicas, _, _ := unstructured.NestedInt64(l.Object, "spec", "replicas")
		if n := autoscaledReplicas(run, o); n > 0 {
			replicas = n // an HPA's current count is the total
		}
		if prev != nil && active(prev) {
			for _, w := range prev.Spec.Workloads {
				if w.Namespace == o.GetNamespace() && w.Name == o.GetName() {
					replicas = int64(w.Replicas)
				}
			}
		}
		workloads = append(workloads, v1alpha1.RolloutWorkload{Namespace: o.GetNamespace(), Name: o.GetName(), Replicas: int32(replicas)})
	}
	if len(workloads) == 0 {
		return nil
	}
	now := metav1.Now()
	mr := &v1alpha1.ModelRollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.MLCDGroupVersion.String(), Kind: "ModelRollout"},
		ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: app.Name},
		Spec: v1alpha1.ModelRolloutSpec{
			Application: app.Name, Model: g.policy.Spec.RegisteredModel, Environment: g.env.Name,
			Revision: run.in.sha, StableVersion: stable, CanaryVersion: g.version,
			Workloads: workloads, Strategy: *spec.Canary, OnFailure: spec.OnFailure, Watch: spec.Watch,
			RepoURL: run.in.src.RepoURL, Branch: run.in.src.TargetRevision,
		},
	}
	for _, w := range workloads {
		if w.Kind != v1alpha1.KindInferenceService {
			mr.Status.Total += w.Replicas
		}
	}
	mr.Status.Phase, mr.Status.StartedAt = rollout.PhaseProgressing, &now
	mr.Status.Message = fmt.Sprintf("rolling out %s over %s", g.version, stable)
	mr.OwnerReferences = []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Application", Name: app.Name, UID: app.UID}}
	if prev != nil {
		// A newer version replaces a rollout: its canary is re-templated
		// under the same name, the state starts again.
		mr.ResourceVersion = prev.ResourceVersion
		if err := r.client.Update(ctx, mr); err != nil {
			return failTransient(v1alpha1.ConditionSyncError, "replace ModelRollout: %s", err)
		}
	} else if err := r.client.Create(ctx, mr); err != nil {
		return failTransient(v1alpha1.ConditionSyncError, "create ModelRollout: %s", err)
	}
	r.event(app, eventNormal, "RolloutStarted", "canary rollout of %s %s over %s started (%d steps)", mr.Spec.Model, g.version, stable, len(spec.Canary.Steps))
	run.rollout = &rolloutRun{mr: mr, held: map[string]bool{}, root: run.in.root}
	return r.stepRollout(ctx, app, run)
}

// stepRollout makes at most one transition of the step machine and moves
// the replicas towards what the state asks for.
func (r *ApplicationReconciler) stepRollout(ctx context.Context, app *v1alpha1.Application, run *syncRun) *stepError {
	rr := run.rollout
	mr := rr.mr
	before := mr.DeepCopy()
	sides, serr := r.sides(ctx, run)
	if serr != nil {
		return serr
	}
	action := mr.Annotations[v1alpha1.RolloutActionAnnotation]
	if action != "" {
		delete(mr.Annotations, v1alpha1.RolloutActionAnnotation)
	}
	if action == "retry" && mr.Status.Phase == rollout.PhaseDegraded && mr.Status.RevertCommit == "" {
		mr.Status = v1alpha1.ModelRolloutStatus{Phase: rollout.PhaseProgressing, Total: mr.Status.Total, StartedAt: ptr(metav1.Now()), Message: "retried by a person"}
		r.event(app, eventNormal, "RolloutRetried", "rollout of %s retried", mr.Spec.CanaryVersion)
	}
	if mr.Status.PauseReason == rollout.ReasonGPUCapacity {
		rr.gpuPausedAt = mr.Status.PausedAt
		mr.Status.Phase, mr.Status.PauseReason, mr.Status.PausedAt = rollout.PhaseProgressing, "", nil // looked at again below
	}
	if active(mr) {
		obs := rollout.Observation{Now: time.Now(), Total: mr.Status.Total, Promote: action == "promote", Abort: action == "abort"}
		for _, s := range sides {
			c, st := rollout.Split(s.w.Replicas, mr.Status.Weight)
			stableReady, stableDone := s.stableReady, s.stableSpec == st
			if replaceGPUs(mr, s) && s.stableSpec < st && s.stableReady >= s.stableSpec {
				// Shrunk on purpose to free GPUs: done once its pods are.
				stableReady, stableDone = st, true
			}
			obs.CanaryReady += s.canaryReady
			obs.StableReady += stableReady
			obs.Scaling = obs.Scaling || s.canarySpec != c || !stableDone
		}
		if mr.Status.Canary == 0 && mr.Status.Stable == 0 {
			obs.Scaling = false // nothing asked yet
		}
		for _, w := range mr.Spec.Workloads {
			if w.Kind == v1alpha1.KindInferenceService && mr.Status.Weight > 0 {
				obs.Scaling = obs.Scaling || !trafficAt(run.live.of(isvcKey(w)), mr.Status.Weight)
			}
		}
		next := r.analyse(ctx, app, run, mr, &obs)
		st, acts := rollout.Next(mr.Spec.Strategy, stateOf(mr.Status), obs)
		setState(&mr.Status, st)
		for _, a := range acts {
			if a.Kind == rollout.StartAnalysis {
				r.startAnalysis(mr, a.Step)
				next = time.Now()
			}
		}
		switch st.Phase {
		case rollout.PhaseHealthy:
			r.finish(app, mr, rollout.PhaseHealthy, fmt.Sprintf("%s rolled out to 100%%", mr.Spec.CanaryVersion))
		case rollout.PhaseDegraded:
			r.finish(app, mr, rollout.PhaseDegraded, st.Message)
		}
		rr.requeue = time.Second
		if d := time.Until(next); !next.IsZero() && d < rr.requeue {
			rr.requeue = max(d, 100*time.Millisecond)
		}
	}
	mr.Status.CanaryReady, mr.Status.StableReady = 0, 0
	for _, s := range sides {
		mr.Status.CanaryReady += s.canaryReady
		mr.Status.StableReady += s.stableReady
	}
	if serr := r.steerInferenceServices(ctx, run, mr); serr != nil {
		return serr
	}
	switch mr.Status.Phase {
	case rollout.PhaseProgressing, rollout.PhasePaused:
		for _, s := range sides {
			rr.held[s.key] = true
			if serr := r.scale(ctx, app, run, mr, s); serr != nil {
				return serr
			}
		}
	case rollout.PhaseHealthy:
		// The stable Deployments take the new template through the
		// ordinary sync; the canaries go once they serve it at full scale.
		if serr := r.removeCanaries(ctx, app, run, sides, false); serr != nil {
			return serr
		}
		if !rr.sync {
			r.watchAfter(ctx, app, mr, rr)
		}
	case rollout.PhaseDegraded:
		for _, s := range sides {
			rr.held[s.key] = true
		}
		if serr := r.removeCanaries(ctx, app, run, sides, true); serr != nil {
			return serr
		}
		r.revertIfDue(ctx, app, mr, sides, rr.restoring)
		if mr.Spec.OnFailure != "abort" && mr.Status.RevertCommit == "" && mr.Status.RevertAttempts < maxRevertAttempt && rr.requeue == 0 {
			rr.requeue = time.Second // the revert is still to come
		}
	}
	return r.saveRollout(ctx, before, mr)
}

// watchAfter keeps the watch analysis running for spec.watch.duration
// after the rollout completed; a failure inside the window degrades the
// rollout, which then reverts as a failed canary does (nothing to scale
// back: the ordinary sync rolls the reverted version out).
func (r *ApplicationReconciler) watchAfter(ctx context.Context, app *v1alpha1.Application, mr *v1alpha1.ModelRollout, rr *rolloutRun) {
	w := mr.Spec.Watch
	if w == nil || w.Analysis == nil || mr.Status.CompletedAt == nil {
		return
	}
	if mr.Status.WatchUntil == nil {
		d, _ := time.ParseDuration(w.Duration)
		mr.Status.WatchUntil = ptr(metav1.NewTime(time.Now().Add(d)))
		mr.Status.Analysis = append(mr.Status.Analysis, v1alpha1.AnalysisRunStatus{Name: watchRun, Step: len(mr.Spec.Strategy.Steps), Phase: analysis.Running, StartedAt: metav1.Now()})
	}
	var ar *v1alpha1.AnalysisRunStatus
	for i := range mr.Status.Analysis {
		if mr.Status.Analysis[i].Name == watchRun {
			ar = &mr.Status.Analysis[i]
		}
	}
	if ar == nil || analysis.Terminal(ar.Phase) {
		return
	}
	if time.Now().After(mr.Status.WatchUntil.Time) {
		ar.Phase, ar.Message = analysis.Successful, "watch window over"
		r.event(app, eventNormal, "WatchCompleted", "%s %s ran its watch window without a failed analysis", mr.Spec.Model, mr.Spec.CanaryVersion)
		return
	}
	var next time.Time
	phase, msg := r.measureRun(ctx, app, mr, rr.root, ar, *w.Analysis, &next)
	if phase == rollout.AnalysisFailed {
		r.finish(app, mr, rollout.PhaseDegraded, "watch analysis failed after the rollout: "+msg)
		rr.requeue = 100 * time.Millisecond // the revert is next
		return
	}
	rr.requeue = min(5*time.Second, max(100*time.Millisecond, time.Until(mr.Status.WatchUntil.Time)))
	if !next.IsZero() {
		rr.requeue = min(rr.requeue, max(100*time.Millisecond, time.Until(next)))
	}
}

// finish ends a rollout with an event.
func (r *ApplicationReconciler) finish(app *v1alpha1.Application, mr *v1alpha1.ModelRollout, phase, msg string) {
	now := metav1.Now()
	mr.Status.Phase, mr.Status.Message, mr.Status.CompletedAt = phase, msg, &now
	mr.Status.PauseReason, mr.Status.PausedAt = "", nil
	if phase == rollout.PhaseHealthy {
		r.event(app, eventNormal, "RolloutCompleted", "%s %s rolled out to 100%%", mr.Spec.Model, mr.Spec.CanaryVersion)
		return
	}
	r.event(app, eventWarning, "RolloutAborted", "rollout of %s %s aborted: %s; %s keeps running", mr.Spec.Model, mr.Spec.CanaryVersion, msg, mr.Spec.StableVersion)
}

func (r *ApplicationReconciler) saveRollout(ctx context.Context, before, mr *v1alpha1.ModelRollout) *stepError {
	if equality.Semantic.DeepEqual(before, mr) {
		return nil
	}
	if err := r.client.Update(ctx, mr); err != nil {
		return failTransient(v1alpha1.ConditionSyncError, "write ModelRollout %s: %s", mr.Name, err)
	}
	return nil
}

func stateOf(s v1alpha1.ModelRolloutStatus) rollout.State {
	st := rollout.State{Step: s.CurrentStepIndex, Phase: s.Phase, PauseReason: s.PauseReason, Weight: s.Weight, Canary: s.Canary, Stable: s.Stable, Message: s.Message}
	if s.PausedAt != nil {
		t := s.PausedAt.Time
		st.PausedAt = &t
	}
	return st
}

func setState(s *v1alpha1.ModelRolloutStatus, st rollout.State) {
	s.CurrentStepIndex, s.Phase, s.PauseReason, s.Weight, s.Canary, s.Stable, s.Message = st.Step, st.Phase, st.PauseReason, st.Weight, st.Canary, st.Stable, st.Message
	s.PausedAt = nil
	if st.PausedAt != nil {
		t := metav1.NewTime(*st.PausedAt)
		s.PausedAt = &t
	}
}

// side is one workload of a rollout: its stable and canary Deployments.
type side struct {
	w                        v1alpha1.RolloutWorkload
	key                      string
	desired, stable, canary  *unstructured.Unstructured
	stableSpec, canarySpec   int32
	stableReady, canaryReady int32
}

func (r *ApplicationReconciler) sides(ctx context.Context, run *syncRun) ([]*side, *stepError) {
	var out []*side
	for _, w := range run.rollout.mr.Spec.Workloads {
		if w.Kind == v1alpha1.KindInferenceService {
			continue
		}
		s := &side{w: w}
		for _, o := range run.in.objs {
			if o.GetKind() == "Deployment" && o.GetNamespace() == w.Namespace && o.GetName() == w.Name {
				s.desired = o
			}
		}
		if s.desired == nil {
			continue // no longer rendered: the ordinary sync prunes it
		}
		s.key = manifest.Key(s.desired)
		s.stable = run.live.of(s.desired)
		probe := &unstructured.Unstructured{}
		probe.SetGroupVersionKind(s.desired.GroupVersionKind())
		probe.SetNamespace(w.Namespace)
		probe.SetName(w.Name + canarySuffix)
		c, err := r.applierOf(ctx).GetDirect(ctx, probe)
		if err != nil {
			return nil, failTransient(v1alpha1.ConditionComparisonError, "read %s: %s", probe.GetName(), err)
		}
		s.canary = c
		s.stableSpec, s.stableReady = replicasOf(s.stable)
		s.canarySpec, s.canaryReady = replicasOf(s.canary)
		out = append(out, s)
	}
	return out, nil
}

// replicasOf is a Deployment's spec.replicas and available pods.
func replicasOf(d *unstructured.Unstructured) (int32, int32) {
	if d == nil {
		return 0, 0
	}
	spec, found, _ := unstructured.NestedInt64(d.Object, "spec", "replicas")
	if !found {
		spec = 1
	}
	avail, _, _ := unstructured.NestedInt64(d.Object, "status", "availableReplicas")
	return int32(spec), int32(avail)
}

// scale moves both sides towards the state's weight: the canary up
// within maxSurge, the stable side down only as far as keeps
// replicas − maxUnavailable pods available (Argo Rollouts' defaults: 25%
// each).
//
// A canary whose pods request GPUs is checked against the free GPUs of
// the nodes it may use: with gpuStrategy pause (default) it does not grow
// and the rollout pauses with GPUCapacity naming the shortfall; with
// replace the stable side shrinks first to free them.
func (r *ApplicationReconciler) scale(ctx context.Context, app *v1alpha1.Application, run *syncRun, mr *v1alpha1.ModelRollout, s *side) *stepError {
	total := s.w.Replicas
	c, st := rollout.Split(total, mr.Status.Weight)
	surge := scaled(mr.Spec.Strategy.MaxSurge, total, true)
	unavail := scaled(mr.Spec.Strategy.MaxUnavailable, total, false)
	if gpusPerPod(s.desired) > 0 && !replaceGPUs(mr, s) {
		// GPU pods, paused when short: the stable side shrinks only as
		// canary pods become ready, so its GPUs are never freed ahead of
		// the canary (gpuStrategy: replace does that).
		unavail = 0
	}
	if surge == 0 && unavail == 0 {
		surge = 1
	}
	newS, newC := s.stableSpec, s.canarySpec
	switch {
	case st < newS:
		newS = max(st, total-unavail-s.canaryReady, 0)
		newS = min(newS, s.stableSpec)
	case st > newS && !replaceGPUs(mr, s):
		newS = st
	}
	switch {
	case c > newC:
		newC = min(c, max(s.canarySpec, total+surge-newS))
	case c < newC:
		newC = max(c, min(s.canarySpec, total-unavail-min(s.stableReady, newS)))
	}
	if gpu := gpusPerPod(s.desired); gpu > 0 && newC > s.canarySpec {
		free, err := r.freeGPUs(ctx, s.desired)
		if err != nil {
			return failTransient(v1alpha1.ConditionSyncError, "GPU capacity: %s", err)
		}
		want := newC - s.canarySpec
		if fits := int32(free / gpu); fits < want {
			short := int64(want-fits) * gpu
			if replaceGPUs(mr, s) {
				// Free them from the stable side first; the canary grows
				// by what fits now and by the rest once the pods are gone.
				per := max(1, gpusPerPod(s.stable))
				floor := max(0, total-unavail-s.canaryReady)
				newS = min(newS, max(floor, s.stableSpec-int32((short+per-1)/per)))
			} else {
				mr.Status.Phase, mr.Status.PauseReason, mr.Status.PausedAt = rollout.PhasePaused, rollout.ReasonGPUCapacity, run.rollout.gpuPausedAt
				if mr.Status.PausedAt == nil {
					mr.Status.PausedAt = ptr(metav1.Now())
				}
				mr.Status.Message = fmt.Sprintf("step %d: %d more canary pods need %d %s, %d free on the nodes they may use: short by %d (free GPUs, or set canary.gpuStrategy: replace)", mr.Status.CurrentStepIndex, want, int64(want)*gpu, gpuResource, free, short)
				if run.rollout.gpuPausedAt == nil {
					r.event(app, eventWarning, "GPUCapacity", "%s", mr.Status.Message)
				}
			}
			newC = s.canarySpec + fits
		}
	}
	if s.canary == nil || newC != s.canarySpec {
		if err := r.applyCanary(ctx, app, mr, s, newC); err != nil {
			return failTransient(v1alpha1.ConditionSyncError, "canary %s%s: %s", s.w.Name, canarySuffix, err)
		}
	}
	if newS != s.stableSpec {
		if err := r.scaleStable(ctx, run, s, newS); err != nil {
			return failTransient(v1alpha1.ConditionSyncError, "scale %s: %s", s.w.Name, err)
		}
	}
	return nil
}

// replaceGPUs: the workload needs GPUs and the strategy frees them from
// the stable side.
func replaceGPUs(mr *v1alpha1.ModelRollout, s *side) bool {
	return mr.Spec.Strategy.GPUStrategy == "replace" && gpusPerPod(s.desired) > 0
}

func scaled(v *intstr.IntOrString, total int32, roundUp bool) int32 {
	def := intstr.FromString("25%")
	if v == nil {
		v = &def
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, int(total), roundUp)
	if err != nil {
		return 0
	}
	return int32(n)
}

// applyCanary creates or scales <name>-canary: the desired (new)
// template, its selector and pod labels told apart by canaryLabel, the
// same Service selecting both sides.
func (r *ApplicationReconciler) applyCanary(ctx context.Context, app *v1alpha1.Application, mr *v1alpha1.ModelRollout, s *side, replicas int32) error {
	c := &unstructured.Unstructured{}
	c.SetGroupVersionKind(s.desired.GroupVersionKind())
	c.SetNamespace(s.w.Namespace)
	c.SetName(s.w.Name + canarySuffix)
	labels := s.desired.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[canaryLabel] = "canary"
	c.SetLabels(labels)
	ann := map[string]string{}
	for k, v := range s.desired.GetAnnotations() {
		if strings.HasPrefix(k, "mlcd.io/") {
			ann[k] = v
		}
	}
	ann["mlcd.io/rollout"] = mr.Namespace + "/" + mr.Name
	c.SetAnnotations(ann)
	spec, _, _ := unstructured.NestedMap(s.desired.Object, "spec") // a deep copy
	spec["replicas"] = int64(replicas)
	_ = unstructured.SetNestedField(spec, "canary", "selector", "matchLabels", canaryLabel)
	_ = unstructured.SetNestedField(spec, "canary", "template", "metadata", "labels", canaryLabel)
	c.Object["spec"] = spec
	if s.canary == nil {
		r.event(app, eventNormal, "CanaryCreated", "created %s with %s %s", c.GetName(), mr.Spec.Model, mr.Spec.CanaryVersion)
	}
	return r.clientOf(ctx).Patch(ctx, c, client.Apply, client.FieldOwner(rolloutManager), client.ForceOwnership)
}

// scaleStable sets the stable Deployment's replicas (its template stays)
// and keeps the reconcile's live copy current, so the sync's autoscaler
// rule reads what was just written.
func (r *ApplicationReconciler) scaleStable(ctx context.Context, run *syncRun, s *side, replicas int32) error {
	if s.stable == nil {
		return nil
	}
	d := s.stable.DeepCopy()
	patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas)
	if err := r.clientOf(ctx).Patch(ctx, d, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(rolloutManager)); err != nil {
		return err
	}
	run.live[s.key] = d
	s.stable, s.stableSpec = d, replicas
	return nil
}

// removeCanaries ends the canary side. With restore (an abort) the
// stable side first goes back to its full scale and the canary is
// deleted once the stable pods are available; without (a completed
// rollout) the canary is deleted once the stable Deployment serves the
// new template at full scale.
func (r *ApplicationReconciler) removeCanaries(ctx context.Context, app *v1alpha1.Application, run *syncRun, sides []*side, restore bool) *stepError {
	waiting := false
	for _, s := range sides {
		full := desiredReplicas(s)
		if s.stableSpec != full {
			if err := r.scaleStable(ctx, run, s, full); err != nil {
				return failTransient(v1alpha1.ConditionSyncError, "scale %s: %s", s.w.Name, err)
			}
		}
		if s.canary == nil {
			continue
		}
		if replaceGPUs(run.rollout.mr, s) {
			// The GPUs the stable side needs are the canary's: hand them
			// over pod by pod, keeping replicas − maxUnavailable available.
			unavail := max(1, scaled(run.rollout.mr.Spec.Strategy.MaxUnavailable, full, false))
			if target := max(0, min(s.canarySpec, full-unavail-s.stableReady)); target < s.canarySpec {
				if err := r.applyCanary(ctx, app, run.rollout.mr, s, target); err != nil {
					return failTransient(v1alpha1.ConditionSyncError, "canary %s%s: %s", s.w.Name, canarySuffix, err)
				}
			}
		}
		if !stableServes(s.stable, full, restore) {
			waiting = true
			continue
		}
		if err := r.clientOf(ctx).Delete(ctx, s.canary); client.IgnoreNotFound(err) != nil {
			return failTransient(v1alpha1.ConditionSyncError, "delete %s: %s", s.canary.GetName(), err)
		}
		r.event(app, eventNormal, "CanaryRemoved", "deleted %s", s.canary.GetName())
	}
	if waiting {
		run.rollout.requeue = time.Second
		run.rollout.sync = !restore
	}
	return nil
}

// desiredReplicas is the stable side's full scale: Git's replicas, or
// what it had when the rollout started (autoscaled).
func desiredReplicas(s *side) int32 {
	if n, found, _ := unstructured.NestedInt64(s.desired.Object, "spec", "replicas"); found {
		return int32(n)
	}
	return s.w.Replicas
}

// stableServes: the stable Deployment has all its replicas available —
// at the new template (updated) unless restoring the old one.
func stableServes(d *unstructured.Unstructured, replicas int32, restore bool) bool {
	if d == nil {
		return false
	}
	gen, _, _ := unstructured.NestedInt64(d.Object, "status", "observedGeneration")
	if gen < d.GetGeneration() {
		return false
	}
	avail, _, _ := unstructured.NestedInt64(d.Object, "status", "availableReplicas")
	updated, _, _ := unstructured.NestedInt64(d.Object, "status", "updatedReplicas")
	total, _, _ := unstructured.NestedInt64(d.Object, "status", "replicas")
	if int32(avail) < replicas {
		return false
	}
	return restore || (int32(updated) >= replicas && total == updated)
}

// analyse measures what is due for the current step's analysis and the
// background analysis and reports their phases; it returns when the
// next measurement is due.
func (r *ApplicationReconciler) analyse(ctx context.Context, app *v1alpha1.Application, run *syncRun, mr *v1alpha1.ModelRollout, obs *rollout.Observation) time.Time {
	var next time.Time
	steps := mr.Spec.Strategy.Steps
	i := mr.Status.CurrentStepIndex
	if i < len(steps) && steps[i].Analysis != nil {
		if ar := findRun(mr, i, false); ar != nil {
			obs.StepAnalysis, obs.AnalysisMessage = r.measureRun(ctx, app, mr, run.in.root, ar, *steps[i].Analysis, &next)
		}
	}
	if bg := mr.Spec.Strategy.Analysis; bg != nil && int32(i) >= bg.StartingStep {
		ar := findRun(mr, 0, true)
		if ar == nil {
			mr.Status.Analysis = append(mr.Status.Analysis, v1alpha1.AnalysisRunStatus{Name: backgroundRun, Step: i, Phase: analysis.Running, StartedAt: metav1.Now()})
			ar = &mr.Status.Analysis[len(mr.Status.Analysis)-1]
		}
		phase, msg := r.measureRun(ctx, app, mr, run.in.root, ar, *bg, &next)
		obs.Background = phase
		if phase == rollout.AnalysisFailed {
			obs.AnalysisMessage = msg
		}
	}
	return next
}

func findRun(mr *v1alpha1.ModelRollout, step int, background bool) *v1alpha1.AnalysisRunStatus {
	for j := range mr.Status.Analysis {
		a := &mr.Status.Analysis[j]
		if background && a.Name == backgroundRun || !background && a.Name != backgroundRun && a.Name != watchRun && a.Step == step {
			return a
		}
	}
	return nil
}

func (r *ApplicationReconciler) startAnalysis(mr *v1alpha1.ModelRollout, step int) {
	if findRun(mr, step, false) != nil {
		return
	}
	mr.Status.Analysis = append(mr.Status.Analysis, v1alpha1.AnalysisRunStatus{Name: fmt.Sprintf("step-%d", step), Step: step, Phase: analysis.Running, StartedAt: metav1.Now()})
}

// measureRun takes the run's due measurements and returns its phase for
// the step machine and what it saw.
func (r *ApplicationReconciler) measureRun(ctx context.Context, app *v1alpha1.Application, mr *v1alpha1.ModelRollout, root string, ar *v1alpha1.AnalysisRunStatus, ref v1alpha1.RolloutAnalysis, next *time.Time) (string, string) {
	if analysis.Terminal(ar.Phase) {
		return stepPhase(ar.Phase), ar.Message
	}
	spec, err := r.analysisSpec(ctx, mr, ref)
	if err != nil {
		ar.Phase, ar.Message = analysis.Error, err.Error()
		return stepPhase(ar.Phase), ar.Message
	}
	env := analysis.Env{Egress: r.Options.Egress, Registry: r.Options.Registry, Model: mr.Spec.Model, StableVersion: mr.Spec.StableVersion, CanaryVersion: mr.Spec.CanaryVersion, ReadFile: checkoutReader(root).Read}
	now := time.Now()
	for _, m := range spec.Metrics {
		res := metricResult(ar, m.Name)
		res.DryRun = spec.DryRun[m.Name]
		due, ok := analysis.Next(m, *res, ar.StartedAt.Time)
		if !ok {
			continue
		}
		if due.After(now) {
			if next.IsZero() || due.Before(*next) {
				*next = due
			}
			continue
		}
		meas := analysis.Measure(ctx, m, env)
		analysis.Record(m, res, meas, spec.Retention[m.Name])
		if ar, ok := r.Options.Recorder.(AnalysisRecorder); ok {
			ar.Measured(templateNames(ref), m.Name, meas.Phase)
		}
		if d, ok := analysis.Next(m, *res, ar.StartedAt.Time); ok && (next.IsZero() || d.Before(*next)) {
			*next = d
		}
	}
	ar.Phase, ar.Message = analysis.RunPhase(spec, ar.Metrics)
	if analysis.Terminal(ar.Phase) {
		r.event(app, eventNormal, "AnalysisCompleted", "analysis %s of %s: %s %s", ar.Name, mr.Spec.CanaryVersion, ar.Phase, ar.Message)
	}
	return stepPhase(ar.Phase), ar.Message
}

func metricResult(ar *v1alpha1.AnalysisRunStatus, name string) *v1alpha1.MetricResult {
	for i := range ar.Metrics {
		if ar.Metrics[i].Name == name {
			return &ar.Metrics[i]
		}
	}
	ar.Metrics = append(ar.Metrics, v1alpha1.MetricResult{Name: name, Phase: analysis.Pending})
	return &ar.Metrics[len(ar.Metrics)-1]
}

// stepPhase maps a run's phase to the step machine's words (an Error,
// which Argo Rollouts treats as a failure, fails).
func stepPhase(p string) string {
	switch p {
	case analysis.Successful:
		return rollout.AnalysisSuccessful
	case analysis.Failed, analysis.Error:
		return rollout.AnalysisFailed
	case analysis.Inconclusive:
		return rollout.AnalysisInconclusive
	}
	return rollout.AnalysisRunning
}

// analysisSpec looks the templates up — AnalysisTemplates in the
// workloads' namespace, ClusterAnalysisTemplates cluster-wide, as Argo
// Rollouts does — and resolves the arguments.
func (r *ApplicationReconciler) analysisSpec(ctx context.Context, mr *v1alpha1.ModelRollout, ref v1alpha1.RolloutAnalysis) (analysis.Spec, error) {
	ns := mr.Spec.Workloads[0].Namespace
	var templates []v1alpha1.AnalysisTemplateSpec
	for _, t := range ref.Templates {
		if t.ClusterScope {
			var ct v1alpha1.ClusterAnalysisTemplate
			if err := r.client.Get(ctx, types.NamespacedName{Name: t.TemplateName}, &ct); err != nil {
				return analysis.Spec{}, fmt.Errorf("ClusterAnalysisTemplate %s: %w", t.TemplateName, err)
			}
			templates = append(templates, ct.Spec)
			continue
		}
		var at v1alpha1.AnalysisTemplate
		if err := r.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: t.TemplateName}, &at); err != nil {
			return analysis.Spec{}, fmt.Errorf("AnalysisTemplate %s/%s: %w", ns, t.TemplateName, err)
		}
		templates = append(templates, at.Spec)
	}
	return analysis.Resolve(templates, ref.Args)
}

// showRollout puts the rollout on the app after observe: held workloads
// OutOfSync, the app Progressing with the step in a condition while it
// runs, Degraded with the failure after an abort.
func showRollout(app *v1alpha1.Application, rr *rolloutRun) bool {
	if rr == nil || rr.mr == nil {
		clearConditions(app, v1alpha1.ConditionRolloutProgressing, v1alpha1.ConditionRolloutAborted)
		return false
	}
	mr := rr.mr
	held := false
	for i, rs := range app.Status.Resources {
		key := manifest.Key(inventory.Object(rs))
		if rr.held[key] {
			app.Status.Resources[i].Status = v1alpha1.SyncStatusOutOfSync
			held = true
		}
	}
	if held {
		app.Status.Sync.Status = v1alpha1.SyncStatusOutOfSync
	}
	steps := len(mr.Spec.Strategy.Steps)
	switch {
	case active(mr):
		clearConditions(app, v1alpha1.ConditionRolloutAborted)
		msg := fmt.Sprintf("canary %s: step %d/%d, weight %d%%, %s", mr.Spec.CanaryVersion, min(mr.Status.CurrentStepIndex+1, steps), steps, mr.Status.Weight, mr.Status.Phase)
		if mr.Status.PauseReason != "" {
			msg += " (" + mr.Status.PauseReason + ")"
		}
		msg += ": " + mr.Status.Message
		setCondition(app, v1alpha1.ConditionRolloutProgressing, msg)
		if app.Status.Health.Status != v1alpha1.HealthDegraded && app.Status.Health.Status != v1alpha1.HealthMissing {
			app.Status.Health = v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: msg}
		}
		if mr.Status.Phase == rollout.PhasePaused && app.Status.Health.Status == v1alpha1.HealthProgressing {
			app.Status.Health.Status = v1alpha1.HealthSuspended
		}
	case mr.Status.Phase == rollout.PhaseDegraded && held:
		clearConditions(app, v1alpha1.ConditionRolloutProgressing)
		msg := fmt.Sprintf("rollout of %s aborted: %s; %s keeps running", mr.Spec.CanaryVersion, mr.Status.Message, mr.Spec.StableVersion)
		switch {
		case mr.Status.RevertCommit != "":
			msg += fmt.Sprintf("; reverted in Git by %s", v1alpha1.ShortSHA(mr.Status.RevertCommit))
		case mr.Status.RevertError != "":
			msg += "; the revert commit failed: " + mr.Status.RevertError
		}
		setCondition(app, v1alpha1.ConditionRolloutAborted, msg)
		app.Status.Health = v1alpha1.HealthStatus{Status: v1alpha1.HealthDegraded, Message: msg}
	case held:
		clearConditions(app, v1alpha1.ConditionRolloutAborted)
		setCondition(app, v1alpha1.ConditionRolloutProgressing, "removing the canary of "+mr.Spec.CanaryVersion)
		if app.Status.Health.Status == v1alpha1.HealthHealthy {
			app.Status.Health = v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: "removing the canary"}
		}
	default:
		clearConditions(app, v1alpha1.ConditionRolloutProgressing, v1alpha1.ConditionRolloutAborted)
	}
	return held
}

// deleteCanaries deletes the canary Deployments of the app's rollout
// (the app is being deleted with its resources).
func (r *ApplicationReconciler) deleteCanaries(ctx context.Context, app *v1alpha1.Application) error {
	mr := &v1alpha1.ModelRollout{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: app.Name}, mr); err != nil {
		return client.IgnoreNotFound(err)
	}
	for _, w := range mr.Spec.Workloads {
		c := &unstructured.Unstructured{}
		c.SetAPIVersion("apps/v1")
		c.SetKind("Deployment")
		c.SetNamespace(w.Namespace)
		c.SetName(w.Name + canarySuffix)
		if err := r.clientOf(ctx).Delete(ctx, c); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// templateNames names a run's templates for metrics ("a+b").
func templateNames(ref v1alpha1.RolloutAnalysis) string {
	names := make([]string, len(ref.Templates))
	for i, t := range ref.Templates {
		names[i] = t.TemplateName
	}
	return strings.Join(names, "+")
}

// autoscaledReplicas is the current replica count of the app's HPA that
// scales d (0: none).
func autoscaledReplicas(run *syncRun, d *unstructured.Unstructured) int64 {
	for _, o := range run.in.objs {
		if o.GetKind() != "HorizontalPodAutoscaler" || o.GetNamespace() != d.GetNamespace() {
			continue
		}
		if name, _, _ := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "name"); name != d.GetName() {
			continue
		}
		if l := run.live.of(o); l != nil {
			n, _, _ := unstructured.NestedInt64(l.Object, "status", "currentReplicas")
			return n
		}
	}
	return 0
}
