package notify

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

func triggers(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Trigger)
	}
	return out
}

func TestFired(t *testing.T) {
	now := metav1.Now()
	app := &v1alpha1.Application{}
	app.UID = "u1"
	if got := triggers(Fired(app)); !reflect.DeepEqual(got, []string{OnCreated}) {
		t.Fatalf("new app: %v", got)
	}
	app.Status.Sync = v1alpha1.SyncStatus{Status: v1alpha1.SyncStatusSynced, Revision: "abcdef123"}
	app.Status.Health.Status = v1alpha1.HealthHealthy
	app.Status.OperationState = &v1alpha1.OperationState{Phase: v1alpha1.PhaseSucceeded, FinishedAt: &now, SyncResult: &v1alpha1.SyncOperationResult{Revision: "abcdef123"}}
	if got := triggers(Fired(app)); !reflect.DeepEqual(got, []string{OnCreated, OnSyncSucceeded, OnDeployed}) {
		t.Fatalf("deployed: %v", got)
	}
	app.Status.OperationState.Phase = v1alpha1.PhaseFailed
	app.Status.Health = v1alpha1.HealthStatus{Status: v1alpha1.HealthDegraded, Message: "crash loop"}
	app.Status.Conditions = []v1alpha1.ApplicationCondition{{Type: v1alpha1.ConditionModelGate, Message: "fraud v9 missing"}}
	evs := Fired(app)
	if got := triggers(evs); !reflect.DeepEqual(got, []string{OnCreated, OnSyncFailed, OnHealthDegraded, OnGateRefused}) {
		t.Fatalf("failing: %v", got)
	}
	// Another failure of the same revision is another occurrence.
	later := metav1.NewTime(now.Add(60e9))
	app.Status.OperationState.FinishedAt = &later
	if Fired(app)[1].Key == evs[1].Key {
		t.Error("two failures share a key")
	}
}

func TestSubscriptionsAndConfig(t *testing.T) {
	app := &v1alpha1.Application{}
	app.Annotations = map[string]string{
		"notifications.argoproj.io/subscribe.on-sync-failed.ops": "oncall; ml-team",
		"notifications.argoproj.io/subscribe.on-deployed.slack":  "#ml",
		"notifications.argoproj.io/subscribe.bad":                "x",
		"unrelated": "y",
	}
	subs := Subscriptions(app)
	if len(subs) != 2 || subs[0].Trigger != OnDeployed || subs[1].Service != "ops" || !reflect.DeepEqual(subs[1].Recipients, []string{"oncall", "ml-team"}) {
		t.Fatalf("subscriptions %+v", subs)
	}
	cfg, err := ParseConfig(map[string]string{
		"service.webhook.ops":  "url: https://hooks.example/ops\nsecret: $ops-secret\nheaders: [{name: X-Team, value: ml}]\n",
		"service.slack":        "url: $slack-url\n",
		"template.on-deployed": "message: '{{.app.metadata.name}} runs {{.event.Key}}'\n",
	}, map[string][]byte{"ops-secret": []byte("s3"), "slack-url": []byte("https://slack.example/T/B/x")})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Services["ops"].Secret != "s3" || cfg.Services["ops"].Headers["X-Team"] != "ml" || cfg.Services["slack"].URL != "https://slack.example/T/B/x" {
		t.Fatalf("services %+v", cfg.Services)
	}
	app.Name = "fd"
	msg, err := cfg.Message(app, Event{Trigger: OnDeployed, Key: "abc1234"})
	if err != nil || msg != "fd runs abc1234" {
		t.Fatalf("message %q %v", msg, err)
	}
	if msg, _ := cfg.Message(app, Event{Trigger: OnSyncFailed, Summary: "sync of x failed"}); !strings.Contains(msg, "sync of x failed") {
		t.Fatalf("default message %q", msg)
	}
}
