package appset

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"

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
	if err != nil || step < 0 {
		return "", err
	}
	if msg, err := earlierSteps(set, app, siblings, revision, step); msg != "" || err != nil {
		return msg, err
	}
	return maxUpdate(set, app, siblings, revision, step)
}

// earlierSteps says which apps of earlier steps app's step waits for.
func earlierSteps(set *v1alpha1.ApplicationSet, app *v1alpha1.Application, siblings []v1alpha1.Application, revision string, step int) (string, error) {
	if step == 0 {
		return "", nil
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

// maxUpdate holds app when its step already updates as many apps as the
// step's maxUpdate allows (Argo CD's rounding: a percentage of the step's
// apps rounded down, but at least 1 when above 0%; 0 updates none; unset
// updates all). An app already at the revision keeps going; the apps
// waiting take the free slots in name order, so concurrent reconciles
// agree on which may start.
func maxUpdate(set *v1alpha1.ApplicationSet, app *v1alpha1.Application, siblings []v1alpha1.Application, revision string, step int) (string, error) {
	mu := set.Spec.Strategy.RollingSync.Steps[step].MaxUpdate
	if mu == nil || revision == "" {
		return "", nil
	}
	var updating, pending []string
	members := 0
	self := false
	for i := range siblings {
		s := &siblings[i]
		if k, err := Step(set, s); err != nil {
			return "", err
		} else if k != step {
			continue
		}
		members++
		st := s.Status
		running := st.OperationState != nil && st.OperationState.Phase == v1alpha1.PhaseRunning
		atRevision := st.Sync.Revision == revision
		done := atRevision && !running && st.Sync.Status == v1alpha1.SyncStatusSynced && st.Health.Status == v1alpha1.HealthHealthy
		isApp := s.Name == app.Name && s.Namespace == app.Namespace
		switch {
		case done:
			if isApp {
				return "", nil
			}
		case atRevision || running:
			if isApp {
				return "", nil // already under way
			}
			updating = append(updating, s.Name)
		default:
			pending = append(pending, s.Name)
			self = self || isApp
		}
	}
	if !self {
		members++
		pending = append(pending, app.Name)
	}
	limit, err := intstr.GetScaledValueFromIntOrPercent(mu, members, false)
	if err != nil {
		return "", fmt.Errorf("ApplicationSet %s: strategy.rollingSync.steps[%d].maxUpdate: %w", set.Name, step, err)
	}
	if limit == 0 && mu.Type == intstr.String && mu.StrVal != "0%" && members > 0 {
		limit = 1 // Argo CD: at least one app for any percentage above 0
	}
	slices.Sort(pending)
	rank := slices.Index(pending, app.Name)
	if free := limit - len(updating); rank < free {
		return "", nil
	}
	slices.Sort(updating)
	return fmt.Sprintf("RollingSync of ApplicationSet %s: step %d updates at most %s of its %d apps at once (maxUpdate) and %s already updating; %s waits its turn", set.Name, step+1, mu.String(), members, updatingList(updating), app.Name), nil
}

func updatingList(names []string) string {
	if len(names) == 0 {
		return "none is"
	}
	return strings.Join(names, ", ") + map[bool]string{true: " is", false: " are"}[len(names) == 1]
}
