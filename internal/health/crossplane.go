package health

import (
	"cmp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// IsCrossplane reports whether an object is a Crossplane managed
// resource, composite resource or claim: a group of Crossplane or its
// providers (`*.crossplane.io`, `*.upbound.io`), or a spec with the fields
// only those carry (forProvider and providerConfigRef on managed
// resources, compositionRef/compositionSelector/resourceRefs on
// composites, resourceRef on claims).
func IsCrossplane(o *unstructured.Unstructured) bool {
	g := o.GroupVersionKind().Group
	if g == "crossplane.io" || strings.HasSuffix(g, ".crossplane.io") || strings.HasSuffix(g, ".upbound.io") {
		return true
	}
	spec, _, _ := unstructured.NestedMap(o.Object, "spec")
	for _, k := range []string{"forProvider", "providerConfigRef", "compositionRef", "compositionSelector", "resourceRefs", "resourceRef"} {
		if _, ok := spec[k]; ok {
			return true
		}
	}
	return false
}

// IsManaged reports whether a Crossplane object is a managed resource (it
// stands for one external resource: forProvider).
func IsManaged(o *unstructured.Unstructured) bool {
	_, ok, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "forProvider")
	return ok
}

// DeletionPolicy is a managed resource's spec.deletionPolicy (Crossplane's
// default: Delete).
func DeletionPolicy(o *unstructured.Unstructured) string {
	if p, _, _ := unstructured.NestedString(o.Object, "spec", "deletionPolicy"); p != "" {
		return p
	}
	return "Delete"
}

// crossplane is Crossplane's health as Argo CD's health checks read it:
// Synced=False (or a failed LastAsyncOperation) → Degraded with the
// condition's message; Ready=True and Synced not False → Healthy;
// Ready not True (reason Creating, a claim waiting for its composite) or
// no conditions yet → Progressing, with the condition's message. A claim carries its
// composite's conditions, so it follows the composite. ProviderConfigs and
// their usages have no status and are Healthy.
func crossplane(live *unstructured.Unstructured) v1alpha1.HealthStatus {
	kind := live.GetKind()
	if kind == "ProviderConfig" || kind == "ProviderConfigUsage" || kind == "ClusterProviderConfig" {
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthHealthy}
	}
	conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
	byType := map[string]map[string]any{}
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok {
			if t, _ := m["type"].(string); t != "" {
				byType[t] = m
			}
		}
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	for _, t := range []string{"Synced", "LastAsyncOperation"} {
		if c := byType[t]; c != nil && str(c, "status") == "False" {
			return v1alpha1.HealthStatus{Status: v1alpha1.HealthDegraded, Message: cmp.Or(str(c, "message"), t+"=False: "+str(c, "reason"))}
		}
	}
	ready := byType["Ready"]
	switch {
	case ready == nil:
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: "waiting for a provider to report Ready"}
	case str(ready, "status") == "True":
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthHealthy, Message: "Resource is up-to-date."}
	default:
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: cmp.Or(str(ready, "message"), "Ready="+str(ready, "status")+": "+str(ready, "reason"))}
	}
}
