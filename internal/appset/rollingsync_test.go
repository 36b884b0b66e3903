package appset

import (
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

func TestRollingSyncHold(t *testing.T) {
	set := &v1alpha1.ApplicationSet{}
	set.Name = "models"
	set.Spec.Strategy = &v1alpha1.ApplicationSetStrategy{Type: "RollingSync", RollingSync: &v1alpha1.ApplicationSetRolloutStrategy{Steps: []v1alpha1.ApplicationSetRolloutStep{
		{MatchExpressions: []v1alpha1.ApplicationMatchExpression{{Key: "env", Operator: "In", Values: []string{"staging"}}}},
		{MatchExpressions: []v1alpha1.ApplicationMatchExpression{{Key: "env", Operator: "In", Values: []string{"production"}}}},
	}}}
	app := func(name, env, sync, health, rev string) v1alpha1.Application {
		a := v1alpha1.Application{}
		a.Name, a.Namespace, a.Labels = name, "argocd", map[string]string{"env": env}
		a.Spec.Source = &v1alpha1.ApplicationSource{RepoURL: "file:///repo"}
		a.Status.Sync.Status, a.Status.Health.Status, a.Status.Sync.Revision = sync, health, rev
		return a
	}
	stg := app("fd-staging", "staging", "Synced", "Healthy", "old")
	prd := app("fd-production", "production", "OutOfSync", "Healthy", "new")
	if !RollingSync(set) {
		t.Fatal("not RollingSync")
	}
	// Staging is the first step: never held.
	if h, _ := Hold(set, &stg, []v1alpha1.Application{stg, prd}, "new"); h != "" {
		t.Errorf("staging held: %s", h)
	}
	// Production waits while staging is not Healthy at the new revision.
	h, _ := Hold(set, &prd, []v1alpha1.Application{stg, prd}, "new")
	if !strings.Contains(h, "step 2 waits for fd-staging (step 1: Synced/Healthy at old)") {
		t.Errorf("hold = %q", h)
	}
	stg.Status.Sync.Revision = "new"
	stg.Status.Health.Status = "Progressing"
	if h, _ := Hold(set, &prd, []v1alpha1.Application{stg, prd}, "new"); h == "" {
		t.Error("released while staging is Progressing")
	}
	stg.Status.Health.Status = "Healthy"
	if h, _ := Hold(set, &prd, []v1alpha1.Application{stg, prd}, "new"); h != "" {
		t.Errorf("still held once staging is Healthy at the revision: %s", h)
	}
	// An app no step selects is not held.
	other := app("fd-dev", "dev", "OutOfSync", "Healthy", "new")
	if h, _ := Hold(set, &other, []v1alpha1.Application{stg, prd, other}, "new"); h != "" {
		t.Errorf("an unselected app is held: %s", h)
	}
}
