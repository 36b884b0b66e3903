package diff

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Autoscaled returns the workloads among objs that an autoscaler among
// objs scales — a HorizontalPodAutoscaler's or a KEDA ScaledObject's
// scaleTargetRef — as "Kind/namespace/name".
func Autoscaled(objs []*unstructured.Unstructured) map[string]bool {
	out := map[string]bool{}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		isHPA := gvk.Group == "autoscaling" && gvk.Kind == "HorizontalPodAutoscaler"
		isKEDA := gvk.Group == "keda.sh" && gvk.Kind == "ScaledObject"
		if !isHPA && !isKEDA {
			continue
		}
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "kind")
		name, _, _ := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "name")
		if kind == "" && isKEDA {
			kind = "Deployment"
		}
		if name != "" {
			out[kind+"/"+o.GetNamespace()+"/"+name] = true
		}
	}
	return out
}

// IsAutoscaled reports whether o is among Autoscaled's targets.
func IsAutoscaled(targets map[string]bool, o *unstructured.Unstructured) bool {
	return targets[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()]
}

// KeepReplicas makes desired carry live's spec.replicas when Git sets
// them, so applying it never changes what an autoscaler set; without a
// live copy (a create) desired keeps the value Git gives. When Git sets
// none, desired stays without: mlcd never takes the field over.
func KeepReplicas(desired, live *unstructured.Unstructured) {
	if live == nil {
		return
	}
	if _, ok, _ := unstructured.NestedFieldNoCopy(desired.Object, "spec", "replicas"); !ok {
		return // Git leaves replicas to the autoscaler: mlcd never owns them
	}
	if r, ok, _ := unstructured.NestedFieldNoCopy(live.Object, "spec", "replicas"); ok {
		_ = unstructured.SetNestedField(desired.Object, r, "spec", "replicas")
	} else {
		unstructured.RemoveNestedField(desired.Object, "spec", "replicas")
	}
}
