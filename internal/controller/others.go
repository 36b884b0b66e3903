package controller

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/diff"
)

// respectOthers adjusts desired objects so mlcd does not fight other
// writers of the live objects:
//   - the replicas of a workload that an autoscaler of the same app scales
//     are never asserted after creation (no configuration needed);
//   - fields under the app's ignoreDifferences (and the system defaults)
//     take their live values, so comparison ignores them; a sync of a new
//     revision writes Git's values unless RespectIgnoreDifferences=true, as
//     in Argo CD, while self-heal never reverts them.
func respectOthers(app *v1alpha1.Application, objs []*unstructured.Unstructured, live liveSet, syncingNewRevision bool) error {
	scaled := diff.Autoscaled(objs)
	for _, o := range objs {
		if diff.IsAutoscaled(scaled, o) {
			diff.KeepReplicas(o, live.of(o))
		}
	}
	if syncingNewRevision && !app.HasSyncOption("RespectIgnoreDifferences=true") {
		return nil
	}
	rules, err := diff.Rules(app.Spec.IgnoreDifferences)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := diff.Respect(rules, o, live.of(o)); err != nil {
			return err
		}
	}
	return nil
}
