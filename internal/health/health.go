// Package health computes Argo CD's health statuses (Healthy, Progressing,
// Degraded, Suspended, Missing, Unknown) of live objects from kstatus plus
// per-kind rules, and an app's summary as the worst of its resources. It is
// pure: values in, values out.
package health

import (
	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// Of returns the health of a live object; nil means the object is missing.
func Of(live *unstructured.Unstructured) v1alpha1.HealthStatus {
	if live == nil {
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthMissing}
	}
	gk := live.GroupVersionKind().GroupKind()
	switch {
	case gk.Group == "apps" && gk.Kind == "Deployment":
		if paused, _, _ := unstructured.NestedBool(live.Object, "spec", "paused"); paused {
			return v1alpha1.HealthStatus{Status: v1alpha1.HealthSuspended, Message: "Deployment is paused"}
		}
	case gk.Group == "" && gk.Kind == "Service":
		if t, _, _ := unstructured.NestedString(live.Object, "spec", "type"); t == "LoadBalancer" {
			ingress, _, _ := unstructured.NestedSlice(live.Object, "status", "loadBalancer", "ingress")
			if len(ingress) == 0 {
				return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: "waiting for a load balancer address"}
			}
		}
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthHealthy}
	case gk.Group == "networking.k8s.io" && gk.Kind == "Ingress":
		// As Argo CD: Healthy once the controller assigned an address.
		ingress, _, _ := unstructured.NestedSlice(live.Object, "status", "loadBalancer", "ingress")
		if len(ingress) == 0 {
			return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: "waiting for the ingress controller to assign an address"}
		}
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthHealthy}
	case gk.Group == "" && gk.Kind == "PersistentVolumeClaim":
		switch phase, _, _ := unstructured.NestedString(live.Object, "status", "phase"); phase {
		case "Bound":
			return v1alpha1.HealthStatus{Status: v1alpha1.HealthHealthy}
		case "Lost":
			return v1alpha1.HealthStatus{Status: v1alpha1.HealthDegraded, Message: "the claim lost its volume"}
		default:
			return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: "waiting for the claim to be bound"}
		}
	case gk.Group == "serving.kserve.io" && gk.Kind == "InferenceService":
		return inferenceService(live)
	case gk.Group == "autoscaling" && gk.Kind == "HorizontalPodAutoscaler":
		return hpa(live)
	case gk.Group == "batch" && gk.Kind == "Job":
		return job(live)
	case IsCrossplane(live):
		return crossplane(live)
	case gk.Group == "argoproj.io" && gk.Kind == "Application":
		s, _, _ := unstructured.NestedString(live.Object, "status", "health", "status")
		msg, _, _ := unstructured.NestedString(live.Object, "status", "health", "message")
		if s == "" {
			return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: "waiting for the application to be reconciled"}
		}
		return v1alpha1.HealthStatus{Status: s, Message: msg}
	}
	res, err := status.Compute(live)
	if err != nil {
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthUnknown, Message: err.Error()}
	}
	switch res.Status {
	case status.CurrentStatus:
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthHealthy, Message: res.Message}
	case status.InProgressStatus, status.TerminatingStatus:
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: res.Message}
	case status.FailedStatus:
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthDegraded, Message: res.Message}
	case status.NotFoundStatus:
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthMissing}
	}
	return v1alpha1.HealthStatus{Status: v1alpha1.HealthUnknown, Message: res.Message}
}

// job is Argo CD's health of a Job: Healthy once complete, Degraded when
// failed, Suspended when suspended, Progressing while it runs (kstatus
// calls a started Job current, which would let a sync wave go on before
// its Job finished).
func job(live *unstructured.Unstructured) v1alpha1.HealthStatus {
	conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["status"] != "True" {
			continue
		}
		msg, _ := m["message"].(string)
		switch m["type"] {
		case "Complete":
			return v1alpha1.HealthStatus{Status: v1alpha1.HealthHealthy, Message: msg}
		case "Failed":
			if msg == "" {
				msg, _ = m["reason"].(string)
			}
			return v1alpha1.HealthStatus{Status: v1alpha1.HealthDegraded, Message: msg}
		}
	}
	if suspended, _, _ := unstructured.NestedBool(live.Object, "spec", "suspend"); suspended {
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthSuspended, Message: "the job is suspended"}
	}
	return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: "the job is running"}
}

// hpa is Degraded when the autoscaler cannot scale its target, else
// Healthy: missing metrics (no metrics server) do not make an app unhealthy.
func hpa(live *unstructured.Unstructured) v1alpha1.HealthStatus {
	conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "AbleToScale" && m["status"] == "False" {
			msg, _ := m["message"].(string)
			return v1alpha1.HealthStatus{Status: v1alpha1.HealthDegraded, Message: msg}
		}
	}
	return v1alpha1.HealthStatus{Status: v1alpha1.HealthHealthy}
}

// rank orders statuses from best to worst, as Argo CD's IsWorse does.
var rank = map[string]int{
	v1alpha1.HealthHealthy:     0,
	v1alpha1.HealthSuspended:   1,
	v1alpha1.HealthProgressing: 2,
	v1alpha1.HealthMissing:     3,
	v1alpha1.HealthDegraded:    4,
	v1alpha1.HealthUnknown:     5,
}

// Worst returns the worst of the statuses; Healthy for none.
func Worst(all []v1alpha1.HealthStatus) v1alpha1.HealthStatus {
	worst := v1alpha1.HealthStatus{Status: v1alpha1.HealthHealthy}
	for _, h := range all {
		if rank[h.Status] > rank[worst.Status] {
			worst = h
		}
	}
	return worst
}
