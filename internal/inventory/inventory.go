// Package inventory is the arithmetic of an Application's inventory — the
// objects mlcd applied for it, kept in status.resources — with no I/O:
// which objects went stale, which of them may be pruned and in what order,
// and the revision history. Flux's rule holds: nothing is pruned that mlcd
// did not apply for this app.
package inventory

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/health"
	"github.com/mlcd-dev/mlcd/internal/manifest"
)

// Object is an inventory entry as an object that carries only its identity.
func Object(rs v1alpha1.ResourceStatus) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetGroupVersionKind(schema.GroupVersionKind{Group: rs.Group, Version: rs.Version, Kind: rs.Kind})
	o.SetNamespace(rs.Namespace)
	o.SetName(rs.Name)
	return o
}

// Objects are the inventory's entries as objects.
func Objects(inv []v1alpha1.ResourceStatus) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(inv))
	for i, rs := range inv {
		out[i] = Object(rs)
	}
	return out
}

// Stale returns the entries of the previous inventory that desired no
// longer holds, in inventory order.
func Stale(previous []v1alpha1.ResourceStatus, desired []*unstructured.Unstructured) []*unstructured.Unstructured {
	want := make(map[string]bool, len(desired))
	for _, o := range desired {
		want[manifest.Key(o)] = true
	}
	var out []*unstructured.Unstructured
	for _, rs := range previous {
		o := Object(rs)
		if !want[manifest.Key(o)] {
			out = append(out, o)
		}
	}
	return out
}

// Skip is a stale object that is not pruned, and why.
type Skip struct {
	Object *unstructured.Unstructured
	Reason string
}

// Skip reasons.
const (
	ReasonPruneDisabled = "Prune=false"
	ReasonNotOwned      = "not managed by this application"
)

// ReasonAwaitingApproval is why an object that needs a person's consent
// to be deleted is left in place.
const ReasonAwaitingApproval = "waiting for deletion approval"

// Plan is what a prune does: objects deleted first, objects deleted last
// (PruneLast), objects left in place, and entries already gone.
type Plan struct {
	Prune     []*unstructured.Unstructured
	PruneLast []*unstructured.Unstructured
	Skipped   []Skip
	Gone      []*unstructured.Unstructured
	// AwaitingApproval are the Skipped objects that wait for consent.
	AwaitingApproval []*unstructured.Unstructured
}

// NeedsApproval reports why deleting o needs a person's consent ("" when
// it does not): Argo CD's `Prune=confirm`/`Delete=confirm` sync options,
// and a Crossplane managed resource whose deletionPolicy is Delete (the
// default) — deleting it deletes the database or bucket it stands for.
func NeedsApproval(o *unstructured.Unstructured) string {
	switch {
	case manifest.HasSyncOption(o, "Prune=confirm"):
		return "Prune=confirm"
	case manifest.HasSyncOption(o, "Delete=confirm"):
		return "Delete=confirm"
	case health.IsManaged(o) && health.DeletionPolicy(o) == "Delete":
		return "a Crossplane managed resource with deletionPolicy Delete (its external resource would be deleted)"
	}
	return ""
}

// Prunable decides for each stale object, from its live copy (nil: gone),
// whether it may be deleted: only if it still carries owner's tracking
// annotation, is not marked Prune=false, and — when it NeedsApproval —
// approved is set. Objects marked PruneLast=true, or all of them when
// pruneLast is set for the app, go last.
func Prunable(owner string, stale []*unstructured.Unstructured, live map[string]*unstructured.Unstructured, pruneLast, approved bool) Plan {
	var p Plan
	for _, o := range stale {
		l := live[manifest.Key(o)]
		switch {
		case l == nil:
			p.Gone = append(p.Gone, o)
		case manifest.HasSyncOption(l, "Prune=false"):
			p.Skipped = append(p.Skipped, Skip{Object: o, Reason: ReasonPruneDisabled})
		case l.GetAnnotations()[manifest.AppAnnotation] != owner:
			p.Skipped = append(p.Skipped, Skip{Object: o, Reason: ReasonNotOwned})
		case NeedsApproval(l) != "" && !approved:
			p.Skipped = append(p.Skipped, Skip{Object: o, Reason: ReasonAwaitingApproval + ": " + NeedsApproval(l)})
			p.AwaitingApproval = append(p.AwaitingApproval, o)
		case pruneLast || manifest.HasSyncOption(l, "PruneLast=true"):
			p.PruneLast = append(p.PruneLast, l)
		default:
			p.Prune = append(p.Prune, l)
		}
	}
	return p
}

// Owned returns the live objects of the inventory that still carry owner's
// tracking annotation: what deleting the app with its finalizer deletes.
func Owned(owner string, inv []*unstructured.Unstructured, live map[string]*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range inv {
		if l := live[manifest.Key(o)]; l != nil && l.GetAnnotations()[manifest.AppAnnotation] == owner {
			out = append(out, l)
		}
	}
	return out
}

// DefaultHistoryLimit is Argo CD's revisionHistoryLimit default.
const DefaultHistoryLimit = 10

// AppendHistory adds entry with the next ID and keeps the newest limit
// entries (DefaultHistoryLimit when limit is nil).
func AppendHistory(history []v1alpha1.RevisionHistory, entry v1alpha1.RevisionHistory, limit *int64) []v1alpha1.RevisionHistory {
	entry.ID = 0
	if n := len(history); n > 0 {
		entry.ID = history[n-1].ID + 1
	}
	out := append(history, entry)
	max := int64(DefaultHistoryLimit)
	if limit != nil {
		max = *limit
	}
	if max < 0 {
		max = 0
	}
	if over := int64(len(out)) - max; over > 0 {
		out = out[over:]
	}
	return out
}
