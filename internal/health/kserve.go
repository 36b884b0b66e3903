package health

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// inferenceService is KServe's health of a serving.kserve.io
// InferenceService: Healthy when Ready (PredictorReady and IngressReady)
// and the model is UpToDate and Loaded; Degraded on a failed load, an
// invalid spec or a condition that is False (Stopped=False only says the
// service is not stopped); Progressing while a revision or model loads.
func inferenceService(live *unstructured.Unstructured) v1alpha1.HealthStatus {
	ms, _, _ := unstructured.NestedMap(live.Object, "status", "modelStatus")
	failure, _, _ := unstructured.NestedString(ms, "lastFailureInfo", "message")
	switch t, _, _ := unstructured.NestedString(ms, "transitionStatus"); t {
	case "BlockedByFailedLoad", "InvalidSpec":
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthDegraded, Message: "model " + t + orEmpty(": ", failure)}
	case "InProgress":
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: "model transition in progress"}
	}
	switch s, _, _ := unstructured.NestedString(ms, "states", "activeModelState"); s {
	case "FailedToLoad":
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthDegraded, Message: "model failed to load" + orEmpty(": ", failure)}
	case "Pending", "Loading":
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: "model " + s}
	}
	conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
	if len(conds) == 0 {
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: "waiting for KServe to report status"}
	}
	ready := false
	var waiting string
	for _, c := range conds {
		m, _ := c.(map[string]any)
		typ, _ := m["type"].(string)
		st, _ := m["status"].(string)
		msg, _ := m["message"].(string)
		if msg == "" {
			msg, _ = m["reason"].(string)
		}
		switch {
		case typ == "Stopped":
			continue
		case st == "False":
			return v1alpha1.HealthStatus{Status: v1alpha1.HealthDegraded, Message: typ + " is False" + orEmpty(": ", msg)}
		case st != "True" && waiting == "":
			waiting = "waiting for " + typ + orEmpty(": ", msg)
		case typ == "Ready" && st == "True":
			ready = true
		}
	}
	if waiting != "" || !ready {
		return v1alpha1.HealthStatus{Status: v1alpha1.HealthProgressing, Message: waiting}
	}
	return v1alpha1.HealthStatus{Status: v1alpha1.HealthHealthy}
}

func orEmpty(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
