// Package notify sends notifications about Applications as Argo CD's
// notifications do: services and templates in the control-plane
// namespace's ConfigMap `argocd-notifications-cm`, secrets in
// `argocd-notifications-secret`, subscriptions by annotation
// `notifications.argoproj.io/subscribe.<trigger>.<service>: <recipient>`
// on the Application. Triggers have Argo CD's names (on-sync-failed,
// on-sync-succeeded, on-deployed, on-health-degraded, on-created,
// on-deleted) plus mlcd's on-gate-refused, on-promotion-blocked,
// on-rollout-aborted and on-reverted. Which triggers fire for an app is a pure
// function of its state; delivery is at least once, and a send is
// recorded on the app (annotation) so a restart does not repeat it.
package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// Names Argo CD uses.
const (
	ConfigMapName = "argocd-notifications-cm"
	SecretName    = "argocd-notifications-secret"
	// SubscribePrefix starts a subscription annotation.
	SubscribePrefix = "notifications.argoproj.io/subscribe."
	// SentAnnotation records what was sent (trigger → key of the event).
	SentAnnotation = "notified.notifications.argoproj.io"
)

// Triggers mlcd knows.
const (
	OnSyncFailed     = "on-sync-failed"
	OnSyncSucceeded  = "on-sync-succeeded"
	OnDeployed       = "on-deployed"
	OnHealthDegraded = "on-health-degraded"
	OnCreated        = "on-created"
	OnDeleted        = "on-deleted"
	OnGateRefused    = "on-gate-refused"
	// OnPromotionBlocked: the gate refused a version because the
	// environment it requires does not run it healthy yet.
	OnPromotionBlocked = "on-promotion-blocked"
	// OnRolloutAborted: a canary rollout was aborted (failed analysis or a
	// person); OnReverted: a revision of the app was reverted in Git (a
	// failed rollout's revert, or a rollback).
	OnRolloutAborted = "on-rollout-aborted"
	OnReverted       = "on-reverted"
)

// Event is a trigger that fires for an app, with a key that identifies
// this occurrence (a new occurrence has a new key: another revision,
// another failure).
type Event struct {
	Trigger string
	Key     string
	// Summary says what happened, for the message.
	Summary string
	// Commit and Author are the synced revision's subject and committer,
	// when the sender knows them.
	Commit, Author string
}

// Fired returns the triggers that fire for the app's current state.
func Fired(app *v1alpha1.Application) []Event {
	var out []Event
	st := app.Status
	rev := v1alpha1.ShortSHA(st.Sync.Revision)
	out = append(out, Event{Trigger: OnCreated, Key: string(app.UID), Summary: "application created"})
	if op := st.OperationState; op != nil && op.FinishedAt != nil && op.SyncResult != nil {
		opRev := v1alpha1.ShortSHA(op.SyncResult.Revision)
		switch op.Phase {
		case v1alpha1.PhaseFailed, v1alpha1.PhaseError:
			out = append(out, Event{Trigger: OnSyncFailed, Key: opRev + "@" + op.FinishedAt.UTC().Format("20060102T150405Z"),
				Summary: fmt.Sprintf("sync of %s failed: %s", opRev, op.Message)})
		case v1alpha1.PhaseSucceeded:
			out = append(out, Event{Trigger: OnSyncSucceeded, Key: opRev, Summary: fmt.Sprintf("synced %s: %s", opRev, op.Message)})
			if st.Health.Status == v1alpha1.HealthHealthy && st.Sync.Status == v1alpha1.SyncStatusSynced && st.Sync.Revision == op.SyncResult.Revision {
				out = append(out, Event{Trigger: OnDeployed, Key: opRev, Summary: fmt.Sprintf("%s is deployed and healthy", opRev)})
			}
		}
	}
	if st.Health.Status == v1alpha1.HealthDegraded {
		out = append(out, Event{Trigger: OnHealthDegraded, Key: rev + "/" + hash(st.Health.Message), Summary: "health degraded: " + st.Health.Message})
	}
	if app.DeletionTimestamp != nil {
		out = append(out, Event{Trigger: OnDeleted, Key: string(app.UID), Summary: "application deleted"})
	}
	for _, c := range st.Conditions {
		switch c.Type {
		case v1alpha1.ConditionModelGate:
			out = append(out, Event{Trigger: OnGateRefused, Key: hash(c.Message), Summary: c.Message})
			if strings.Contains(c.Message, "deployment successful") {
				out = append(out, Event{Trigger: OnPromotionBlocked, Key: hash(c.Message), Summary: "promotion blocked: " + c.Message})
			}
		case v1alpha1.ConditionRolloutAborted:
			// The message grows when the revert lands: key on its start.
			head, _, _ := strings.Cut(c.Message, "; ")
			out = append(out, Event{Trigger: OnRolloutAborted, Key: hash(head), Summary: c.Message})
		}
	}
	if v := app.Annotations[v1alpha1.RevertedAnnotation]; v != "" {
		list := strings.Split(v, ",")
		last := list[len(list)-1]
		out = append(out, Event{Trigger: OnReverted, Key: v1alpha1.ShortSHA(last), Summary: fmt.Sprintf("revision %s was reverted in Git; %s now runs", v1alpha1.ShortSHA(last), rev)})
	}
	return out
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// Subscription is one annotation: trigger, service, recipients.
type Subscription struct {
	Trigger, Service string
	Recipients       []string
}

// Subscriptions reads the app's subscription annotations, sorted.
func Subscriptions(app *v1alpha1.Application) []Subscription {
	var out []Subscription
	for k, v := range app.Annotations {
		rest, ok := strings.CutPrefix(k, SubscribePrefix)
		if !ok {
			continue
		}
		trigger, service, ok := strings.Cut(rest, ".")
		if !ok || trigger == "" || service == "" {
			continue
		}
		var rcpt []string
		for _, r := range strings.Split(v, ";") {
			if r = strings.TrimSpace(r); r != "" {
				rcpt = append(rcpt, r)
			}
		}
		out = append(out, Subscription{Trigger: trigger, Service: service, Recipients: rcpt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Trigger+out[i].Service < out[j].Trigger+out[j].Service })
	return out
}

// SentKey is the record of one delivery: trigger, service and event key.
func SentKey(trigger, service, key string) string { return trigger + ":" + service + ":" + key }
