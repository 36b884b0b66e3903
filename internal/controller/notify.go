package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/notify"
)

// NotificationReconciler sends the notifications Applications subscribe
// to. What fires is notify.Fired of the app's status; a delivery is
// recorded on the app (notified.notifications.argoproj.io) after it
// succeeded, so each event is sent at least once and, across restarts,
// not again.
type NotificationReconciler struct {
	apps *ApplicationReconciler
}

func (n *NotificationReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("notifications").
		For(&v1alpha1.Application{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4, SkipNameValidation: ptr(true)}).
		Complete(n)
}

const maxSentRecords = 50

// Reconcile sends what fired and was not sent yet.
func (n *NotificationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r := n.apps
	if !r.namespaceWatched(req.Namespace) {
		return ctrl.Result{}, nil
	}
	app := &v1alpha1.Application{}
	if err := r.client.Get(ctx, req.NamespacedName, app); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.owns(app) {
		return ctrl.Result{}, nil // another shard sends its apps' notifications
	}
	subs := notify.Subscriptions(app)
	if len(subs) == 0 {
		return ctrl.Result{}, nil
	}
	cfg, err := n.config(ctx)
	if err != nil || cfg == nil {
		return ctrl.Result{}, err
	}
	sent := map[string]string{}
	if v := app.Annotations[notify.SentAnnotation]; v != "" {
		_ = json.Unmarshal([]byte(v), &sent)
	}
	fired := map[string]notify.Event{}
	for _, ev := range notify.Fired(app) {
		fired[ev.Trigger] = ev
	}
	var errs []error
	changed := false
	for _, s := range subs {
		ev, ok := fired[s.Trigger]
		if !ok {
			continue
		}
		key := notify.SentKey(s.Trigger, s.Service, ev.Key)
		if _, done := sent[key]; done {
			continue
		}
		svc, ok := cfg.Services[s.Service]
		if !ok {
			errs = append(errs, fmt.Errorf("app %s/%s subscribes to service %q, which %s does not define", app.Namespace, app.Name, s.Service, notify.ConfigMapName))
			continue
		}
		if src := app.SourceOf(); src != nil && app.Status.Sync.Revision != "" && ev.Commit == "" {
			if md, err := r.engine.Sources.Metadata(ctx, src.RepoURL, app.Status.Sync.Revision); err == nil {
				ev.Commit, _, _ = strings.Cut(md.Message, "\n")
				ev.Author = md.Author
			}
		}
		msg, err := cfg.Message(app, ev)
		if err != nil {
			errs = append(errs, fmt.Errorf("template %s: %w", s.Trigger, err))
			continue
		}
		status, err := cfg.Status(app, ev)
		if err != nil {
			errs = append(errs, fmt.Errorf("template %s github.status: %w", s.Trigger, err))
			continue
		}
		p := notify.Payload{Status: status,
			Application: app.Name, Namespace: app.Namespace, Project: app.Spec.Project, Trigger: s.Trigger, Recipients: s.Recipients,
			Revision: app.Status.Sync.Revision, SyncStatus: app.Status.Sync.Status, Health: app.Status.Health.Status,
			Model: app.Annotations[v1alpha1.AppAnnotationModel], Version: app.Annotations[v1alpha1.AppAnnotationVersion], Message: msg,
			Commit: ev.Commit, Author: ev.Author,
		}
		if src := app.SourceOf(); src != nil {
			p.RepoURL = src.RepoURL
		}
		if err := notify.Send(ctx, svc, p); err != nil {
			errs = append(errs, err)
			continue
		}
		sent[key] = time.Now().UTC().Format(time.RFC3339)
		changed = true
	}
	if changed {
		if err := n.record(ctx, app, sent); err != nil {
			errs = append(errs, err)
		}
	}
	return ctrl.Result{}, errors.Join(errs...) // failures retry with backoff
}

// record keeps the newest records on the app.
func (n *NotificationReconciler) record(ctx context.Context, app *v1alpha1.Application, sent map[string]string) error {
	if len(sent) > maxSentRecords {
		keys := make([]string, 0, len(sent))
		for k := range sent {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return sent[keys[i]] < sent[keys[j]] })
		for _, k := range keys[:len(keys)-maxSentRecords] {
			delete(sent, k)
		}
	}
	data, _ := json.Marshal(sent)
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, notify.SentAnnotation, string(data)))
	return client.IgnoreNotFound(n.apps.client.Patch(ctx, app, client.RawPatch("application/merge-patch+json", patch)))
}

// config reads the notifications ConfigMap and Secret of the control-plane
// namespace; nil when there is no ConfigMap.
func (n *NotificationReconciler) config(ctx context.Context) (*notify.Config, error) {
	ns := n.apps.Options.ControllerNamespace
	var cm corev1.ConfigMap
	err := n.apps.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: notify.ConfigMapName}, &cm)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var sec corev1.Secret
	if err := n.apps.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: notify.SecretName}, &sec); err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	return notify.ParseConfig(cm.Data, sec.Data)
}
