package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

func TestBackoff(t *testing.T) {
	two, three := int64(2), int64(3)
	cases := []struct {
		b       *v1alpha1.Backoff
		attempt int64
		want    time.Duration
	}{
		{nil, 0, 5 * time.Second},
		{nil, 1, 10 * time.Second},
		{nil, 10, 3 * time.Minute},
		{&v1alpha1.Backoff{Duration: "1s", Factor: &three, MaxDuration: "20s"}, 2, 9 * time.Second},
		{&v1alpha1.Backoff{Duration: "1s", Factor: &three, MaxDuration: "20s"}, 3, 20 * time.Second},
		{&v1alpha1.Backoff{Duration: "2s", Factor: &two}, 1, 4 * time.Second},
	}
	for _, c := range cases {
		if got := backoff(c.b, c.attempt); got != c.want {
			t.Errorf("backoff(%+v, %d) = %s, want %s", c.b, c.attempt, got, c.want)
		}
	}
}

func TestDecide(t *testing.T) {
	failedAt := func(ago time.Duration, retries int64) *v1alpha1.OperationState {
		at := metav1.NewTime(time.Now().Add(-ago))
		return &v1alpha1.OperationState{Phase: v1alpha1.PhaseFailed, StartedAt: at, FinishedAt: &at, RetryCount: retries, SyncResult: &v1alpha1.SyncOperationResult{Revision: "abc"}}
	}
	app := func(auto *v1alpha1.SyncPolicyAutomated, retry *v1alpha1.RetryStrategy, op *v1alpha1.OperationState) *v1alpha1.Application {
		a := &v1alpha1.Application{}
		if auto != nil || retry != nil {
			a.Spec.SyncPolicy = &v1alpha1.SyncPolicy{Automated: auto, Retry: retry}
		}
		a.Status.OperationState = op
		return a
	}
	succeeded := &v1alpha1.OperationState{Phase: v1alpha1.PhaseSucceeded, SyncResult: &v1alpha1.SyncOperationResult{Revision: "abc"}}
	cases := []struct {
		name string
		app  *v1alpha1.Application
		sha  string
		want syncDecision
	}{
		{"manual", app(nil, nil, nil), "abc", syncDecision{}},
		{"first sync", app(&v1alpha1.SyncPolicyAutomated{}, nil, nil), "abc", syncDecision{autoSync: true}},
		{"new revision", app(&v1alpha1.SyncPolicyAutomated{}, nil, succeeded), "def", syncDecision{autoSync: true}},
		{"at rest, no selfHeal", app(&v1alpha1.SyncPolicyAutomated{}, nil, succeeded), "abc", syncDecision{}},
		{"at rest, selfHeal", app(&v1alpha1.SyncPolicyAutomated{SelfHeal: true}, nil, succeeded), "abc", syncDecision{autoSync: true}},
		{"failed, no retry", app(&v1alpha1.SyncPolicyAutomated{}, nil, failedAt(time.Hour, 0)), "abc", syncDecision{exhausted: true}},
		{"failed, retry due", app(&v1alpha1.SyncPolicyAutomated{}, &v1alpha1.RetryStrategy{Limit: 2}, failedAt(time.Minute, 0)), "abc", syncDecision{autoSync: true}},
		{"failed, retries used up", app(&v1alpha1.SyncPolicyAutomated{}, &v1alpha1.RetryStrategy{Limit: 2}, failedAt(time.Minute, 2)), "abc", syncDecision{exhausted: true}},
	}
	for _, c := range cases {
		if got := decide(c.app, c.sha); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	// A retry not yet due waits the rest of its backoff (5 s for the first).
	got := decide(app(&v1alpha1.SyncPolicyAutomated{}, &v1alpha1.RetryStrategy{Limit: -1}, failedAt(time.Second, 0)), "abc")
	if got.autoSync || got.wait <= 3*time.Second || got.wait > 4*time.Second {
		t.Errorf("retry not due: %+v, want a wait of about 4 s", got)
	}
}
