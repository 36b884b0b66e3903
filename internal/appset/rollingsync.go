package appset

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// RollingSync reports whether the set rolls its apps out in steps.
func RollingSync(set *v1alpha1.ApplicationSet) bool {
	st := set.Spec.Strategy
	return st != nil && st.Type == "RollingSync" && st.RollingSync != nil && len(st.RollingSync.Steps) > 0
}

// Step is the index of the first RollingSync step whose selector matches
// the app's labels (-1: none; such an app is not held).
func Step(set *v1alpha1.ApplicationSet, app *v1alpha1.Application) (int, error) {
	for i, s := range set.Spec.Strategy.RollingSync.Steps {
		sel, err := stepSelector(s)
		if err != nil {
			return -1, fmt.Errorf("ApplicationSet %s: strategy.rollingSync.steps[%d]: %w", set.Name, i, err)
		}
		if sel.Matches(labels.Set(app.Labels)) {
			return i, nil
		}
	}
	return -1, nil
}

func stepSelector(s v1alpha1.ApplicationSetRolloutStep) (labels.Selector, error) {
	ls := &metav1.LabelSelector{}
	for _, e := range s.MatchExpressions {
		ls.MatchExpressions = append(ls.MatchExpressions, metav1.LabelSelectorRequirement{Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values})
	}
	return metav1.LabelSelectorAsSelector(ls)
}

// Hold says why app may not sync revision now under the set's RollingSync
// ("" when it may): every app of an earlier step must be Synced and
// Healthy — at the same revision when it tracks the same repository — and
// have no operation running. Unlike Argo CD, automated sync stays on: the
// later steps wait instead of being switched off.
func Hold(set *v1alpha1.ApplicationSet, app *v1alpha1.Application, siblings []v1alpha1.Application, revision string) (string, error) {
	step, err := Step(set, app)
	if err != nil || step <= 0 {
		return "", err
	}
	repo := ""
	if src := app.SourceOf(); src != nil {
		repo = src.RepoURL
	}
	var waiting []string
	for i := range siblings {
		s := &siblings[i]
		if s.Name == app.Name && s.Namespace == app.Namespace {
			continue
		}
		k, err := Step(set, s)
		if err != nil {
			return "", err
		}
		if k < 0 || k >= step {
			continue
		}
		st := s.Status
		ready := st.Sync.Status == v1alpha1.SyncStatusSynced && st.Health.Status == v1alpha1.HealthHealthy &&
			(st.OperationState == nil || st.OperationState.Phase != v1alpha1.PhaseRunning)
		if src := s.SourceOf(); ready && src != nil && src.RepoURL == repo && revision != "" && st.Sync.Revision != revision {
			ready = false
		}
		if !ready {
			waiting = append(waiting, fmt.Sprintf("%s (step %d: %s/%s at %s)", s.Name, k+1, st.Sync.Status, st.Health.Status, v1alpha1.ShortSHA(st.Sync.Revision)))
		}
	}
	if len(waiting) == 0 {
		return "", nil
	}
	return fmt.Sprintf("RollingSync of ApplicationSet %s: step %d waits for %s to be Synced and Healthy at %s", set.Name, step+1, strings.Join(waiting, ", "), v1alpha1.ShortSHA(revision)), nil
}
