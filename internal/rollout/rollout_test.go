package rollout

import (
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

func w(n int32) *int32 { return &n }

func TestSplit(t *testing.T) {
	cases := []struct{ total, weight, canary, stable int32 }{
		{10, 10, 1, 9}, {10, 50, 5, 5}, {10, 100, 10, 0}, {10, 0, 0, 10},
		{3, 10, 1, 2}, {2, 99, 1, 1}, {1, 50, 1, 0}, {1, 40, 0, 1}, {5, 33, 2, 3}, {0, 50, 0, 0},
	}
	for _, c := range cases {
		if gc, gs := Split(c.total, c.weight); gc != c.canary || gs != c.stable {
			t.Errorf("Split(%d, %d) = %d/%d, want %d/%d", c.total, c.weight, gc, gs, c.canary, c.stable)
		}
	}
}

var spec = v1alpha1.CanaryStrategy{Steps: []v1alpha1.CanaryStep{
	{SetWeight: w(10)},
	{Analysis: &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "error-rate"}}}},
	{SetWeight: w(50)},
	{Pause: &v1alpha1.RolloutPause{Duration: "30s"}},
	{Pause: &v1alpha1.RolloutPause{}},
	{SetWeight: w(100)},
}}

// run applies Next until it stops changing, returning the states seen.
func TestHappyPath(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	type step struct {
		obs   Observation
		phase string
		step  int
		act   ActionKind
	}
	steps := []step{
		{Observation{Now: t0, Total: 10}, PhaseProgressing, 0, Scale},                                // 1 canary + 9 stable
		{Observation{Now: t0, Total: 10, CanaryReady: 0, StableReady: 10}, PhaseProgressing, 0, ""},  // waiting
		{Observation{Now: t0, Total: 10, CanaryReady: 1, StableReady: 9}, PhaseProgressing, 1, ""},   // ready: next step
		{Observation{Now: t0, Total: 10}, PhaseProgressing, 1, StartAnalysis},                        // analysis starts
		{Observation{Now: t0, Total: 10, StepAnalysis: AnalysisRunning}, PhaseProgressing, 1, ""},    // running
		{Observation{Now: t0, Total: 10, StepAnalysis: AnalysisSuccessful}, PhaseProgressing, 2, ""}, // passed
		{Observation{Now: t0, Total: 10}, PhaseProgressing, 2, Scale},                                // 5 + 5
		{Observation{Now: t0, Total: 10, CanaryReady: 5, StableReady: 5}, PhaseProgressing, 3, ""},   //
		{Observation{Now: t0, Total: 10}, PhasePaused, 3, ""},                                        // pause 30s
		{Observation{Now: t0.Add(10 * time.Second), Total: 10}, PhasePaused, 3, ""},                  // not yet
		{Observation{Now: t0.Add(31 * time.Second), Total: 10}, PhaseProgressing, 4, ""},             // over
		{Observation{Now: t0.Add(32 * time.Second), Total: 10}, PhasePaused, 4, ""},                  // indefinite
		{Observation{Now: t0.Add(time.Hour), Total: 10}, PhasePaused, 4, ""},                         // still
		{Observation{Now: t0.Add(time.Hour), Total: 10, Promote: true}, PhaseProgressing, 5, ""},     // promoted
		{Observation{Now: t0.Add(time.Hour), Total: 10}, PhaseProgressing, 5, Scale},                 // 10 + 0
		{Observation{Now: t0.Add(time.Hour), Total: 10, CanaryReady: 10}, PhaseProgressing, 6, ""},   //
		{Observation{Now: t0.Add(time.Hour), Total: 10, CanaryReady: 10}, PhaseHealthy, 6, Promote},  // full
		{Observation{Now: t0.Add(time.Hour), Total: 10}, PhaseHealthy, 6, ""},                        // stays
	}
	var st State
	for i, s := range steps {
		var acts []Action
		st, acts = Next(spec, st, s.obs)
		var act ActionKind
		if len(acts) > 0 {
			act = acts[0].Kind
		}
		if st.Phase != s.phase || st.Step != s.step || act != s.act {
			t.Fatalf("call %d: phase %s step %d action %q (%s), want %s %d %q", i, st.Phase, st.Step, act, st.Message, s.phase, s.step, s.act)
		}
	}
}

func TestFailures(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(step int) State {
		return State{Step: step, Phase: PhaseProgressing, Weight: 10, Canary: 1, Stable: 9}
	}
	// A failed step analysis aborts: stable back to full scale.
	st, acts := Next(spec, at(1), Observation{Now: t0, Total: 10, StepAnalysis: AnalysisFailed, AnalysisMessage: "error rate 0.07 > 0.01"})
	if st.Phase != PhaseDegraded || len(acts) != 1 || acts[0].Kind != Abort || acts[0].Stable != 10 || st.Message != "step 1: analysis failed: error rate 0.07 > 0.01" {
		t.Fatalf("failed analysis: %+v %+v", st, acts)
	}
	// Inconclusive pauses until a person promotes.
	st, _ = Next(spec, at(1), Observation{Now: t0, Total: 10, StepAnalysis: AnalysisInconclusive})
	if st.Phase != PhasePaused || st.PauseReason != ReasonInconclusive {
		t.Fatalf("inconclusive: %+v", st)
	}
	st, _ = Next(spec, st, Observation{Now: t0, Total: 10, StepAnalysis: AnalysisInconclusive, Promote: true})
	if st.Phase != PhaseProgressing || st.Step != 2 {
		t.Fatalf("inconclusive promoted: %+v", st)
	}
	// A person aborts at any step.
	if st, _ := Next(spec, at(3), Observation{Now: t0, Total: 10, Abort: true}); st.Phase != PhaseDegraded {
		t.Fatalf("abort: %+v", st)
	}
	// Background analysis counts from its starting step.
	bg := spec
	bg.Analysis = &v1alpha1.RolloutAnalysis{Templates: []v1alpha1.AnalysisTemplateRef{{TemplateName: "latency"}}, StartingStep: 2}
	if st, _ := Next(bg, at(1), Observation{Now: t0, Total: 10, Background: AnalysisFailed, StepAnalysis: AnalysisRunning}); st.Phase == PhaseDegraded {
		t.Fatal("background analysis counted before its starting step")
	}
	if st, _ := Next(bg, at(2), Observation{Now: t0, Total: 10, Background: AnalysisFailed}); st.Phase != PhaseDegraded {
		t.Fatalf("background failure: %+v", st)
	}
	// Finished rollouts do not move.
	done := State{Phase: PhaseDegraded, Step: 1}
	if st, acts := Next(spec, done, Observation{Now: t0, Total: 10, Promote: true}); st.Phase != PhaseDegraded || acts != nil {
		t.Fatal("a degraded rollout moved")
	}
}

// TestWaitsWhileScaling: a weight is reached only once both sides have
// the replicas it asks for, not merely enough ready pods.
func TestWaitsWhileScaling(t *testing.T) {
	st := State{Step: 0, Phase: PhaseProgressing, Weight: 10, Canary: 1, Stable: 9}
	if got, _ := Next(spec, st, Observation{Total: 10, CanaryReady: 1, StableReady: 10, Scaling: true}); got.Step != 0 {
		t.Fatalf("advanced while the stable side still had 10 replicas: %+v", got)
	}
	if got, _ := Next(spec, st, Observation{Total: 10, CanaryReady: 1, StableReady: 9}); got.Step != 1 {
		t.Fatalf("did not advance once scaled: %+v", got)
	}
}
