package controller

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// Event types.
const (
	eventNormal  = "Normal"
	eventWarning = "Warning"
)

// eventRecorder is what the reconciler needs of Kubernetes Events
// (client-go's events.EventRecorder).
type eventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{})
}

// event emits an Event on the object (an Application or an ApplicationSet).
func (r *ApplicationReconciler) event(app runtime.Object, typ, reason, format string, args ...any) {
	if r.events == nil {
		return
	}
	note := fmt.Sprintf(format, args...)
	if len(note) > 1000 {
		note = note[:1000]
	}
	r.events.Eventf(app, nil, typ, reason, "Reconcile", "%s", note)
}

// emit compares the status before and after a reconcile and emits an
// Event for each change a user watches for: a new or changed failure
// condition (model gate refusal included) and a health change.
func (r *ApplicationReconciler) emit(before, after *v1alpha1.Application) {
	old := map[string]string{}
	for _, c := range before.Status.Conditions {
		old[c.Type] = c.Message
	}
	for _, c := range after.Status.Conditions {
		if msg, ok := old[c.Type]; ok && msg == c.Message {
			continue
		}
		if c.Type == v1alpha1.ConditionSyncError {
			continue // the sync operation emitted SyncFailed
		}
		r.event(after, eventWarning, c.Type, "%s", c.Message)
	}
	// A first sync's Progressing is no news (SyncSucceeded said what was
	// created); every later change, and a first health that is anything
	// else, is.
	if b, a := before.Status.Health.Status, after.Status.Health.Status; a != "" && b != a && (b != "" || a != v1alpha1.HealthProgressing) {
		typ := eventNormal
		if a == v1alpha1.HealthDegraded || a == v1alpha1.HealthMissing {
			typ = eventWarning
		}
		r.event(after, typ, "HealthChanged", "health %s -> %s%s", orNone(b), a, suffix(after.Status.Health.Message))
	}
	if b, a := before.Status.Sync.Status, after.Status.Sync.Status; a != "" && b != a && a != v1alpha1.SyncStatusSynced {
		r.event(after, eventNormal, "SyncStatusChanged", "sync status %s -> %s", orNone(b), a)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}
