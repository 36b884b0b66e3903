package appset

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"k8s.io/apimachinery/pkg/util/intstr"
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

func TestRollingSyncMaxUpdate(t *testing.T) {
	set := &v1alpha1.ApplicationSet{}
	set.Name = "models"
	step := v1alpha1.ApplicationSetRolloutStep{MatchExpressions: []v1alpha1.ApplicationMatchExpression{{Key: "env", Operator: "In", Values: []string{"production"}}}}
	set.Spec.Strategy = &v1alpha1.ApplicationSetStrategy{Type: "RollingSync", RollingSync: &v1alpha1.ApplicationSetRolloutStrategy{Steps: []v1alpha1.ApplicationSetRolloutStep{step}}}
	apps := make([]v1alpha1.Application, 4)
	for i := range apps {
		a := &apps[i]
		a.Name, a.Namespace, a.Labels = fmt.Sprintf("p%d", i+1), "argocd", map[string]string{"env": "production"}
		a.Status.Sync.Status, a.Status.Health.Status, a.Status.Sync.Revision = "Synced", "Healthy", "old"
	}
	goes := func(mu intstr.IntOrString) string {
		set.Spec.Strategy.RollingSync.Steps[0].MaxUpdate = &mu
		var out []string
		for i := range apps {
			if h, err := Hold(set, &apps[i], apps, "new"); err != nil {
				t.Fatal(err)
			} else if h == "" {
				out = append(out, apps[i].Name)
			}
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		mu   intstr.IntOrString
		want string
	}{
		{intstr.FromString("50%"), "p1,p2"},
		{intstr.FromString("10%"), "p1"}, // rounded down to 0, at least 1
		{intstr.FromInt32(3), "p1,p2,p3"},
		{intstr.FromInt32(0), ""},
		{intstr.FromString("100%"), "p1,p2,p3,p4"},
	} {
		if got := goes(c.mu); got != c.want {
			t.Errorf("maxUpdate %s: %q may go, want %q", c.mu.String(), got, c.want)
		}
	}
	// p1 is under way (at the revision, Progressing): it keeps going, one
	// more slot is free at 50 %.
	apps[0].Status.Sync.Revision, apps[0].Status.Health.Status = "new", "Progressing"
	if got := goes(intstr.FromString("50%")); got != "p1,p2" {
		t.Errorf("with p1 updating: %q", got)
	}
	apps[1].Status.Sync.Revision, apps[1].Status.Health.Status = "new", "Progressing"
	if got := goes(intstr.FromString("50%")); got != "p1,p2" {
		t.Errorf("with p1, p2 updating: %q", got)
	}
	h, _ := Hold(set, &apps[2], apps, "new")
	if !strings.Contains(h, "updates at most 50% of its 4 apps at once (maxUpdate) and p1, p2 are already updating") {
		t.Errorf("hold message %q", h)
	}
	apps[0].Status.Health.Status = "Healthy"
	if got := goes(intstr.FromString("50%")); got != "p1,p2,p3" {
		t.Errorf("p1 done, p2 updating: %q", got)
	}
}
