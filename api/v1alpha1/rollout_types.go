package v1alpha1

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// EnvironmentRollout says how a new model version rolls out in one
// environment (ModelPolicy spec.rollout.<environment>), in Argo Rollouts'
// vocabulary.
type EnvironmentRollout struct {
	Canary *CanaryStrategy `json:"canary,omitempty"`
	// OnFailure is revert (default: the promoting commit is reverted in
	// Git) or abort (the stable version is restored, Git is left alone).
	OnFailure string `json:"onFailure,omitempty"`
	// Promotion writes the promotion to the next environment once this
	// one ran the version healthy for After.
	Promotion *RolloutPromotion `json:"promotion,omitempty"`
	// Watch keeps analysis running after 100 % for Duration.
	Watch *RolloutWatch `json:"watch,omitempty"`
}

// CanaryStrategy is a list of steps plus background analysis.
type CanaryStrategy struct {
	Steps          []CanaryStep        `json:"steps,omitempty"`
	Analysis       *RolloutAnalysis    `json:"analysis,omitempty"`
	MaxSurge       *intstr.IntOrString `json:"maxSurge,omitempty"`
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// GPUStrategy: pause (default) when a canary's GPUs do not fit, or
	// replace (scale the stable side down first).
	GPUStrategy string `json:"gpuStrategy,omitempty"`
}

// CanaryStep is one step; exactly one field is set.
type CanaryStep struct {
	SetWeight *int32           `json:"setWeight,omitempty"`
	Pause     *RolloutPause    `json:"pause,omitempty"`
	Analysis  *RolloutAnalysis `json:"analysis,omitempty"`
}

// RolloutPause waits Duration, or for `mlcd rollout promote` when empty.
type RolloutPause struct {
	Duration string `json:"duration,omitempty"`
}

// RolloutAnalysis runs AnalysisTemplates.
type RolloutAnalysis struct {
	Templates    []AnalysisTemplateRef `json:"templates,omitempty"`
	Args         []AnalysisArg         `json:"args,omitempty"`
	StartingStep int32                 `json:"startingStep,omitempty"`
}

// AnalysisTemplateRef names an AnalysisTemplate (or ClusterAnalysisTemplate).
type AnalysisTemplateRef struct {
	TemplateName string `json:"templateName"`
	ClusterScope bool   `json:"clusterScope,omitempty"`
}

// AnalysisArg is an argument passed to the templates.
type AnalysisArg struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// RolloutPromotion promotes to another environment after a soak time.
type RolloutPromotion struct {
	To    string `json:"to"`
	After string `json:"after,omitempty"`
}

// RolloutWatch keeps analysis after the rollout.
type RolloutWatch struct {
	Duration string           `json:"duration"`
	Analysis *RolloutAnalysis `json:"analysis,omitempty"`
}

// validateRollout checks spec.rollout against the environments; errors
// name the field.
func validateRollout(p *ModelPolicy) error {
	envs := map[string]bool{}
	for _, e := range p.Spec.Environments {
		envs[e.Name] = true
	}
	for env, r := range p.Spec.Rollout {
		field := "spec.rollout." + env
		if !envs[env] {
			return fmt.Errorf("ModelPolicy %s: %s: no environment %q", p.Name, field, env)
		}
		switch r.OnFailure {
		case "", "revert", "abort":
		default:
			return fmt.Errorf("ModelPolicy %s: %s.onFailure: %q is not revert or abort", p.Name, field, r.OnFailure)
		}
		if r.Promotion != nil {
			if !envs[r.Promotion.To] {
				return fmt.Errorf("ModelPolicy %s: %s.promotion.to: no environment %q", p.Name, field, r.Promotion.To)
			}
			if err := durationField(r.Promotion.After); err != nil {
				return fmt.Errorf("ModelPolicy %s: %s.promotion.after: %w", p.Name, field, err)
			}
		}
		if r.Watch != nil {
			if d, err := time.ParseDuration(r.Watch.Duration); err != nil || d <= 0 {
				return fmt.Errorf("ModelPolicy %s: %s.watch.duration: %q is not a positive duration", p.Name, field, r.Watch.Duration)
			}
		}
		if r.Canary == nil {
			continue
		}
		switch r.Canary.GPUStrategy {
		case "", "pause", "replace":
		default:
			return fmt.Errorf("ModelPolicy %s: %s.canary.gpuStrategy: %q is not pause or replace", p.Name, field, r.Canary.GPUStrategy)
		}
		for i, s := range r.Canary.Steps {
			sf := fmt.Sprintf("%s.canary.steps[%d]", field, i)
			n := 0
			if s.SetWeight != nil {
				n++
				if *s.SetWeight < 0 || *s.SetWeight > 100 {
					return fmt.Errorf("ModelPolicy %s: %s.setWeight: %d is not within 0..100", p.Name, sf, *s.SetWeight)
				}
			}
			if s.Pause != nil {
				n++
				if err := durationField(s.Pause.Duration); err != nil {
					return fmt.Errorf("ModelPolicy %s: %s.pause.duration: %w", p.Name, sf, err)
				}
			}
			if s.Analysis != nil {
				n++
				if len(s.Analysis.Templates) == 0 {
					return fmt.Errorf("ModelPolicy %s: %s.analysis.templates: at least one template is needed", p.Name, sf)
				}
			}
			if n != 1 {
				return fmt.Errorf("ModelPolicy %s: %s: exactly one of setWeight, pause, analysis is needed", p.Name, sf)
			}
		}
	}
	return nil
}

// durationField accepts "", a Go duration or a bare number of seconds.
func durationField(s string) error {
	if s == "" {
		return nil
	}
	if _, err := ParseRolloutDuration(s); err != nil {
		return err
	}
	return nil
}

// ParseRolloutDuration reads Argo Rollouts' durations: "30s", "10m", or a
// bare number of seconds.
func ParseRolloutDuration(s string) (time.Duration, error) {
	var secs int64
	if _, err := fmt.Sscanf(s, "%d", &secs); err == nil && fmt.Sprint(secs) == s {
		return time.Duration(secs) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (30s, 10m, or seconds)", s)
	}
	return d, nil
}
