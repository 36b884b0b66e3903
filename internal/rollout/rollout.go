// Package rollout is the canary step machine, pure: Next takes the
// strategy, the state kept in the cluster and what was observed, and
// returns the new state and what to do. Each call makes at most one
// transition, so a controller that restarts between calls resumes where
// it was. Replica arithmetic follows Argo Rollouts' basic canary.
package rollout

import (
	"fmt"
	"math"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// Phases, as Argo Rollouts names them.
const (
	PhaseProgressing = "Progressing"
	PhasePaused      = "Paused"
	PhaseHealthy     = "Healthy"
	PhaseDegraded    = "Degraded"
)

// Pause reasons.
const (
	ReasonPauseStep    = "CanaryPauseStep"
	ReasonInconclusive = "InconclusiveAnalysis"
	ReasonGPUCapacity  = "GPUCapacity"
)

// Analysis phases an observation reports.
const (
	AnalysisNone         = ""
	AnalysisRunning      = "Running"
	AnalysisSuccessful   = "Successful"
	AnalysisFailed       = "Failed"
	AnalysisInconclusive = "Inconclusive"
)

// State is what the cluster keeps of one rollout.
type State struct {
	Step        int
	Phase       string
	PauseReason string
	PausedAt    *time.Time
	// Weight is the canary's share in percent; Canary and Stable the
	// replicas each side should have.
	Weight         int32
	Canary, Stable int32
	Message        string
}

// Observation is what the controller saw since the last call.
type Observation struct {
	Now time.Time
	// Total is the replicas the workload should have (an HPA's current
	// count when one scales it).
	Total int32
	// CanaryReady and StableReady are ready pods per side.
	CanaryReady, StableReady int32
	// Scaling: a side does not have the replicas the state asks for yet
	// (the controller moves them within maxSurge/maxUnavailable).
	Scaling bool
	// StepAnalysis is the phase of the current step's analysis run;
	// Background that of the background analysis.
	StepAnalysis, Background string
	// AnalysisMessage says what a failed or inconclusive analysis saw.
	AnalysisMessage string
	// Promote and Abort are a person's requests.
	Promote, Abort bool
}

// ActionKind is what the controller does.
type ActionKind string

// Actions.
const (
	// Scale sets both sides' replicas (Canary, Stable).
	Scale ActionKind = "Scale"
	// StartAnalysis starts the current step's analysis.
	StartAnalysis ActionKind = "StartAnalysis"
	// Promote gives the stable workload the new template and removes the
	// canary.
	Promote ActionKind = "Promote"
	// Abort puts the stable side back at full scale, then removes the
	// canary.
	Abort ActionKind = "Abort"
)

// Action is one thing to do.
type Action struct {
	Kind           ActionKind
	Canary, Stable int32
	Step           int
}

// Split is Argo Rollouts' basic canary arithmetic: the canary's replicas
// nearest to weight percent of total, with at least one canary and one
// stable pod for weights between 1 and 99 when total > 1.
func Split(total, weight int32) (canary, stable int32) {
	if total <= 0 {
		return 0, 0
	}
	canary = int32(math.Round(float64(total) * float64(weight) / 100))
	if weight > 0 && weight < 100 && total > 1 {
		canary = max(1, min(total-1, canary))
	}
	canary = max(0, min(total, canary))
	return canary, total - canary
}

// Next makes at most one transition.
func Next(spec v1alpha1.CanaryStrategy, st State, obs Observation) (State, []Action) {
	if st.Phase == PhaseHealthy || st.Phase == PhaseDegraded {
		return st, nil
	}
	if st.Phase == "" {
		st.Phase = PhaseProgressing
	}
	abort := func(msg string) (State, []Action) {
		st.Phase, st.Message, st.PauseReason, st.PausedAt = PhaseDegraded, msg, "", nil
		st.Weight, st.Canary, st.Stable = 0, 0, obs.Total
		return st, []Action{{Kind: Abort, Stable: obs.Total}}
	}
	if obs.Abort {
		return abort("aborted by a person")
	}
	bg := spec.Analysis
	if bg != nil && int32(st.Step) >= bg.StartingStep && obs.Background == AnalysisFailed {
		return abort("background analysis failed: " + obs.AnalysisMessage)
	}
	if st.Step >= len(spec.Steps) {
		st.Phase, st.Weight, st.Canary, st.Stable, st.Message = PhaseHealthy, 100, 0, obs.Total, "rolled out"
		return st, []Action{{Kind: Promote, Stable: obs.Total}}
	}
	step := spec.Steps[st.Step]
	advance := func(msg string) (State, []Action) {
		st.Step++
		st.Phase, st.PauseReason, st.PausedAt, st.Message = PhaseProgressing, "", nil, msg
		return st, nil
	}
	switch {
	case step.SetWeight != nil:
		c, s := Split(obs.Total, *step.SetWeight)
		if st.Weight != *step.SetWeight || st.Canary != c || st.Stable != s {
			st.Weight, st.Canary, st.Stable = *step.SetWeight, c, s
			st.Message = fmt.Sprintf("step %d: weight %d%% (%d canary, %d stable)", st.Step, *step.SetWeight, c, s)
			return st, []Action{{Kind: Scale, Canary: c, Stable: s, Step: st.Step}}
		}
		if !obs.Scaling && obs.CanaryReady >= c && obs.StableReady >= s {
			return advance(fmt.Sprintf("step %d: weight %d%% ready", st.Step, *step.SetWeight))
		}
		st.Message = fmt.Sprintf("step %d: waiting for %d canary and %d stable pods (%d and %d ready)", st.Step, c, s, obs.CanaryReady, obs.StableReady)
		return st, nil
	case step.Pause != nil:
		if st.PausedAt == nil {
			now := obs.Now
			st.Phase, st.PauseReason, st.PausedAt = PhasePaused, ReasonPauseStep, &now
			st.Message = fmt.Sprintf("step %d: paused", st.Step)
			return st, nil
		}
		if obs.Promote {
			return advance(fmt.Sprintf("step %d: promoted by a person", st.Step))
		}
		if step.Pause.Duration != "" {
			d, _ := v1alpha1.ParseRolloutDuration(step.Pause.Duration)
			if !obs.Now.Before(st.PausedAt.Add(d)) {
				return advance(fmt.Sprintf("step %d: pause of %s over", st.Step, d))
			}
		}
		return st, nil
	case step.Analysis != nil:
		switch obs.StepAnalysis {
		case AnalysisNone:
			st.Message = fmt.Sprintf("step %d: analysis started", st.Step)
			return st, []Action{{Kind: StartAnalysis, Step: st.Step}}
		case AnalysisSuccessful:
			return advance(fmt.Sprintf("step %d: analysis passed", st.Step))
		case AnalysisFailed:
			return abort(fmt.Sprintf("step %d: analysis failed: %s", st.Step, obs.AnalysisMessage))
		case AnalysisInconclusive:
			if obs.Promote {
				return advance(fmt.Sprintf("step %d: inconclusive analysis promoted by a person", st.Step))
			}
			if st.PauseReason != ReasonInconclusive {
				now := obs.Now
				st.Phase, st.PauseReason, st.PausedAt = PhasePaused, ReasonInconclusive, &now
				st.Message = fmt.Sprintf("step %d: analysis inconclusive: %s; mlcd rollout promote continues", st.Step, obs.AnalysisMessage)
			}
			return st, nil
		}
		st.Message = fmt.Sprintf("step %d: analysis running", st.Step)
		return st, nil
	}
	return advance(fmt.Sprintf("step %d: empty step skipped", st.Step))
}
