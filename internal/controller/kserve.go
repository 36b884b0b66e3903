package controller

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/rollout"
)

// KServe canaries: a serverless InferenceService splits traffic itself
// (spec.predictor.canaryTrafficPercent between the new revision and the
// last one that rolled out), so the rollout steers that field instead of
// scaling replicas: each step's weight while it runs, removed at the end
// (KServe promotes the new revision to 100 %), 0 and then the previous
// spec on an abort.

func isInferenceService(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == "serving.kserve.io" && gvk.Kind == v1alpha1.KindInferenceService
}

// stableInferenceService records the live service as a rollout's stable
// side: its spec and lineage annotations.
func stableInferenceService(live *unstructured.Unstructured) (v1alpha1.RolloutWorkload, error) {
	w := v1alpha1.RolloutWorkload{Kind: v1alpha1.KindInferenceService, Namespace: live.GetNamespace(), Name: live.GetName(), StableAnnotations: map[string]string{}}
	spec, _, _ := unstructured.NestedMap(live.Object, "spec")
	data, err := json.Marshal(spec)
	if err != nil {
		return w, err
	}
	w.StableSpec = &runtime.RawExtension{Raw: data}
	for k, v := range live.GetAnnotations() {
		if strings.HasPrefix(k, "mlcd.io/") {
			w.StableAnnotations[k] = v
		}
	}
	return w, nil
}

// isvcKey is an object standing for the workload's InferenceService.
func isvcKey(w v1alpha1.RolloutWorkload) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion("serving.kserve.io/v1beta1")
	o.SetKind(v1alpha1.KindInferenceService)
	o.SetNamespace(w.Namespace)
	o.SetName(w.Name)
	return o
}

// trafficAt: KServe reports the latest revision ready and serving weight
// percent of the traffic.
func trafficAt(live *unstructured.Unstructured, weight int32) bool {
	if live == nil {
		return false
	}
	gen, _, _ := unstructured.NestedInt64(live.Object, "status", "observedGeneration")
	if gen < live.GetGeneration() {
		return false
	}
	if inferenceReady(live) != "True" {
		return false
	}
	return latestPercent(live) == int64(weight)
}

func inferenceReady(live *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == "Ready" {
			s, _ := m["status"].(string)
			return s
		}
	}
	return ""
}

// latestPercent is the traffic share of the latest revision.
func latestPercent(live *unstructured.Unstructured) int64 {
	traffic, _, _ := unstructured.NestedSlice(live.Object, "status", "components", "predictor", "traffic")
	var p int64
	for _, t := range traffic {
		m, _ := t.(map[string]any)
		if latest, _ := m["latestRevision"].(bool); latest {
			switch v := m["percent"].(type) {
			case int64:
				p += v
			case float64:
				p += int64(v)
			}
		}
	}
	return p
}

// steerInferenceServices applies each InferenceService of the rollout as
// its phase asks (the sync holds them meanwhile).
func (r *ApplicationReconciler) steerInferenceServices(ctx context.Context, run *syncRun, mr *v1alpha1.ModelRollout) *stepError {
	rr := run.rollout
	for _, w := range mr.Spec.Workloads {
		if w.Kind != v1alpha1.KindInferenceService {
			continue
		}
		var desired *unstructured.Unstructured
		for _, o := range run.in.objs {
			if isInferenceService(o) && o.GetNamespace() == w.Namespace && o.GetName() == w.Name {
				desired = o
			}
		}
		if desired == nil {
			continue
		}
		live := run.live.of(desired)
		var out *unstructured.Unstructured
		switch mr.Status.Phase {
		case rollout.PhaseHealthy:
			// KServe promotes the new revision once the field is gone.
			if live != nil {
				if _, found, _ := unstructured.NestedInt64(live.Object, "spec", "predictor", "canaryTrafficPercent"); found {
					rr.sync = true
				}
			}
		case rollout.PhaseProgressing, rollout.PhasePaused:
			out = withCanaryPercent(desired, mr.Status.Weight)
		case rollout.PhaseDegraded:
			// Traffic back to the previous revision first, then its spec.
			liveVersion, pct, found := "", int64(0), false
			if live != nil {
				liveVersion = live.GetAnnotations()[v1alpha1.AnnotationModelVersion]
				pct, found, _ = unstructured.NestedInt64(live.Object, "spec", "predictor", "canaryTrafficPercent")
			}
			if liveVersion == mr.Spec.StableVersion || (found && pct == 0 && latestPercent(live) == 0) {
				out = stableSpec(desired, w)
				rr.restoring = liveVersion != mr.Spec.StableVersion
			} else {
				out = withCanaryPercent(desired, 0)
				rr.restoring = true
			}
		}
		if out == nil {
			continue
		}
		rr.held[manifest.Key(desired)] = true
		if rr.requeue == 0 {
			rr.requeue = time.Second
		}
		if _, err := r.applierOf(ctx).Apply(ctx, []*unstructured.Unstructured{out}, nil); err != nil {
			return failTransient(v1alpha1.ConditionSyncError, "InferenceService %s: %s", w.Name, err)
		}
	}
	return nil
}

func withCanaryPercent(o *unstructured.Unstructured, weight int32) *unstructured.Unstructured {
	c := o.DeepCopy()
	_ = unstructured.SetNestedField(c.Object, int64(weight), "spec", "predictor", "canaryTrafficPercent")
	return c
}

// stableSpec is the desired object carrying the spec and lineage from
// before the rollout.
func stableSpec(o *unstructured.Unstructured, w v1alpha1.RolloutWorkload) *unstructured.Unstructured {
	c := o.DeepCopy()
	if w.StableSpec != nil {
		var spec map[string]any
		if err := json.Unmarshal(w.StableSpec.Raw, &spec); err == nil {
			delete(spec, "predictor") // replaced below, without a canary share
			c.Object["spec"] = spec
			var full map[string]any
			_ = json.Unmarshal(w.StableSpec.Raw, &full)
			if p, ok := full["predictor"].(map[string]any); ok {
				delete(p, "canaryTrafficPercent")
				spec["predictor"] = p
			}
		}
	}
	ann := c.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	for k, v := range w.StableAnnotations {
		ann[k] = v
	}
	c.SetAnnotations(ann)
	return c
}
