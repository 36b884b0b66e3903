package notify

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

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

// TestModelTriggers: mlcd's own triggers and on-deleted, each keyed so a
// changed message of the same occurrence does not send again.
func TestModelTriggers(t *testing.T) {
	app := &v1alpha1.Application{}
	app.UID = "u1"
	app.Status.Sync.Revision = "1234567890"
	app.Status.Conditions = []v1alpha1.ApplicationCondition{
		{Type: v1alpha1.ConditionModelGate, Message: "model fraud v2 may not deploy to production: staging deployment successful: staging runs version 1 (v1), not 2 (v2)"},
		{Type: v1alpha1.ConditionRolloutAborted, Message: "rollout of v2 aborted: step 1: analysis failed; v1 keeps running"},
	}
	app.Annotations = map[string]string{v1alpha1.RevertedAnnotation: "aaaaaaaaaa,bbbbbbbbbbbb"}
	now := metav1.Now()
	app.DeletionTimestamp = &now
	byTrigger := map[string]Event{}
	for _, e := range Fired(app) {
		byTrigger[e.Trigger] = e
	}
	for _, want := range []string{OnGateRefused, OnPromotionBlocked, OnRolloutAborted, OnReverted, OnDeleted} {
		if _, ok := byTrigger[want]; !ok {
			t.Errorf("%s did not fire: %v", want, triggers(Fired(app)))
		}
	}
	if k := byTrigger[OnReverted].Key; k != "bbbbbbb" {
		t.Errorf("on-reverted key %s, want the newest reverted revision", k)
	}
	// The revert commit added to the abort's message is the same abort.
	app.Status.Conditions[1].Message += "; reverted in Git by ccccccc"
	for _, e := range Fired(app) {
		if e.Trigger == OnRolloutAborted && e.Key != byTrigger[OnRolloutAborted].Key {
			t.Error("the abort fired again when its revert landed")
		}
	}
	// A gate refusal for another reason does not block a promotion.
	app.Status.Conditions = []v1alpha1.ApplicationCondition{{Type: v1alpha1.ConditionModelGate, Message: "offline metrics: auc 0.8 < 0.92"}}
	for _, e := range Fired(app) {
		if e.Trigger == OnPromotionBlocked {
			t.Error("on-promotion-blocked fired for a metric gate")
		}
	}
}

// TestEmail sends through a minimal SMTP server and checks the mail.
func TestEmail(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		fmt.Fprint(c, "220 test ESMTP\r\n")
		var mail strings.Builder
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if inData {
				if line == ".\r\n" {
					inData = false
					fmt.Fprint(c, "250 ok\r\n")
					continue
				}
				mail.WriteString(line)
				continue
			}
			switch cmd := strings.ToUpper(strings.Fields(line + " x")[0]); cmd {
			case "EHLO", "HELO":
				fmt.Fprint(c, "250 test\r\n")
			case "DATA":
				inData = true
				fmt.Fprint(c, "354 go\r\n")
			case "QUIT":
				fmt.Fprint(c, "221 bye\r\n")
				got <- mail.String()
				return
			default:
				mail.WriteString(line)
				fmt.Fprint(c, "250 ok\r\n")
			}
		}
	}()
	host, port, _ := net.SplitHostPort(l.Addr().String())
	cfg, err := ParseConfig(map[string]string{"service.email": fmt.Sprintf("host: %s\nport: %s\nfrom: mlcd@example.com\n", host, port)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := Payload{Application: "fraud-detection-production", Namespace: "argocd", Trigger: OnRolloutAborted, Recipients: []string{"oncall@example.com"}, Message: "rollout of v2.3.2 aborted\nerror rate 0.2"}
	if err := Send(context.Background(), cfg.Services["email"], p); err != nil {
		t.Fatal(err)
	}
	select {
	case mail := <-got:
		for _, want := range []string{"MAIL FROM:<mlcd@example.com>", "RCPT TO:<oncall@example.com>", "Subject: [mlcd] argocd/fraud-detection-production: on-rollout-aborted", "rollout of v2.3.2 aborted\r\nerror rate 0.2"} {
			if !strings.Contains(mail, want) {
				t.Errorf("mail lacks %q:\n%s", want, mail)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no mail")
	}
	if err := Send(context.Background(), cfg.Services["email"], Payload{Trigger: OnDeployed}); err == nil || !strings.Contains(err.Error(), "no recipient") {
		t.Errorf("mail without recipients: %v", err)
	}
}
