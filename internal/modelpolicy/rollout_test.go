package modelpolicy

import (
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// TestRolloutSpec: the typed rollout of a ModelPolicy parses the issue's
// example, and errors name the field.
func TestRolloutSpec(t *testing.T) {
	head := "apiVersion: mlcd.io/v1alpha1\nkind: ModelPolicy\nmetadata: {name: fd}\nspec:\n  environments:\n  - {name: staging, valuesFile: values-staging.yaml}\n  - {name: production, valuesFile: values-production.yaml}\n"
	ok := head + `  rollout:
    production:
      canary:
        steps:
        - setWeight: 10
        - analysis: {templates: [{templateName: error-rate}], args: [{name: service, value: fraud-detection}]}
        - setWeight: 50
        - pause: {duration: 30s}
        - setWeight: 100
        analysis: {templates: [{templateName: latency}], startingStep: 1}
      onFailure: revert
    staging:
      promotion: {to: production, after: 10m}
`
	p, err := v1alpha1.ParseModelPolicy([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	c := p.Spec.Rollout["production"].Canary
	if len(c.Steps) != 5 || *c.Steps[0].SetWeight != 10 || c.Steps[1].Analysis.Args[0].Value != "fraud-detection" || c.Analysis.StartingStep != 1 || p.Spec.Rollout["staging"].Promotion.To != "production" {
		t.Fatalf("parsed %+v", p.Spec.Rollout)
	}
	bad := map[string]string{
		"    production: {canary: {steps: [{setWeight: 120}]}}\n":            "spec.rollout.production.canary.steps[0].setWeight",
		"    production: {canary: {steps: [{setWeight: 10, pause: {}}]}}\n":  "spec.rollout.production.canary.steps[0]: exactly one",
		"    production: {canary: {steps: [{pause: {duration: soon}}]}}\n":   "spec.rollout.production.canary.steps[0].pause.duration",
		"    production: {onFailure: ignore}\n":                              "spec.rollout.production.onFailure",
		"    staging: {promotion: {to: prod}}\n":                             "spec.rollout.staging.promotion.to",
		"    canary-env: {}\n":                                               "spec.rollout.canary-env",
		"    production: {canary: {steps: [{analysis: {templates: []}}]}}\n": "analysis.templates",
	}
	for doc, want := range bad {
		_, err := v1alpha1.ParseModelPolicy([]byte(head + "  rollout:\n" + doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", strings.TrimSpace(doc), err, want)
		}
	}
}
