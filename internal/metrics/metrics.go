// Package metrics is mlcd's one metrics recorder: Argo CD's metric names
// and labels for what Argo CD measures (so existing dashboards and alerts
// work unchanged) and mlcd's own for models. It is built once in main and
// passed in. Labels are bounded: never a SHA; a model version only on an
// _info series.
package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// Outcome is what one reconcile of an app came to.
type Outcome struct {
	Duration time.Duration
	// Err is the failure, nil when the reconcile completed.
	Err error
	// Reason is the failed step's condition type ("" on success).
	Reason string
	// Synced reports that a sync operation ran (its phase is in the app's
	// operationState).
	Synced bool
}

// Recorder records reconciles, syncs and gate results, and exports the
// Applications' state at scrape time.
type Recorder struct {
	reconcile    *prometheus.HistogramVec
	syncs        *prometheus.CounterVec
	gates        *prometheus.CounterVec
	gitRequests  *prometheus.CounterVec
	gitDuration  *prometheus.HistogramVec
	measurements *prometheus.CounterVec
	k8sRequests  *prometheus.CounterVec
	renders      *prometheus.HistogramVec
	registry     *prometheus.CounterVec
	appsets      *prometheus.HistogramVec
}

// New registers the recorder's metrics with reg.
func New(reg prometheus.Registerer) *Recorder {
	r := &Recorder{
		reconcile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "argocd_app_reconcile",
			Help:    "Application reconciliation performance in seconds.",
			Buckets: []float64{0.25, 0.5, 1, 2, 4, 8, 16},
		}, []string{"namespace", "dest_server"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "argocd_app_sync_total",
			Help: "Number of application syncs.",
		}, []string{"namespace", "name", "project", "dest_server", "phase"}),
		gates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlcd_gate_result_total",
			Help: "Model gate checks by model, environment, check and result.",
		}, []string{"model", "environment", "check", "result"}),
		gitRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "argocd_git_request_total",
			Help: "Number of git requests performed by repo server",
		}, []string{"repo", "request_type"}),
		gitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "argocd_git_request_duration_seconds",
			Help:    "Git requests duration seconds.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 4, 10, 20},
		}, []string{"repo", "request_type"}),
		measurements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlcd_analysis_measurement_total",
			Help: "Canary analysis measurements by template, metric and phase.",
		}, []string{"template", "metric", "phase"}),
		k8sRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "argocd_app_k8s_request_total",
			Help: "Number of kubernetes requests executed during application reconciliation.",
		}, []string{"namespace", "name", "project", "server", "response_code", "verb", "resource_kind", "resource_namespace", "dry_run"}),
		renders: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlcd_render_duration_seconds",
			Help:    "Time to render an application's manifests, by source type.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"source_type"}),
		registry: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlcd_registry_request_total",
			Help: "Requests to the model registry by MLflow route and HTTP status code.",
		}, []string{"route", "code"}),
		appsets: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "argocd_appset_reconcile",
			Help:    "Application reconciliation performance in seconds.",
			Buckets: []float64{0.25, 0.5, 1, 2, 4, 8, 16},
		}, []string{"name", "namespace"}),
	}
	reg.MustRegister(r.reconcile, r.syncs, r.gates, r.gitRequests, r.gitDuration, r.measurements, r.k8sRequests, r.renders, r.registry, r.appsets)
	return r
}

// GitRequest records one request to a Git remote (source.Options.OnRequest).
func (r *Recorder) GitRequest(repo, requestType string, took time.Duration, _ error) {
	r.gitRequests.WithLabelValues(repo, requestType).Inc()
	r.gitDuration.WithLabelValues(repo, requestType).Observe(took.Seconds())
}

// Rendered records one render of an app's manifests.
func (r *Recorder) Rendered(sourceType string, took time.Duration) {
	r.renders.WithLabelValues(sourceType).Observe(took.Seconds())
}

// RegistryRequest records one request to the model registry
// (registry.ClientOptions.OnRequest).
func (r *Recorder) RegistryRequest(route, code string) {
	r.registry.WithLabelValues(route, code).Inc()
}

// AppSetReconciled records one reconcile of an ApplicationSet.
func (r *Recorder) AppSetReconciled(namespace, name string, took time.Duration) {
	r.appsets.WithLabelValues(name, namespace).Observe(took.Seconds())
}

// Measured records one analysis measurement.
func (r *Recorder) Measured(template, metric, phase string) {
	r.measurements.WithLabelValues(template, metric, phase).Inc()
}

// CollectApps registers argocd_app_info and mlcd_model_version_info,
// listed from apps (a cache) at every scrape.
func CollectApps(reg prometheus.Registerer, apps client.Reader) {
	reg.MustRegister(&appCollector{apps: apps})
}

// Reconciled records one reconcile (the controller's Recorder).
func (r *Recorder) Reconciled(app *v1alpha1.Application, o Outcome) {
	r.reconcile.WithLabelValues(app.Namespace, app.Spec.Destination.Server).Observe(o.Duration.Seconds())
	if o.Synced && app.Status.OperationState != nil {
		r.syncs.WithLabelValues(app.Namespace, app.Name, app.Spec.Project, app.Spec.Destination.Server, app.Status.OperationState.Phase).Inc()
	}
}

// GateChecked records the checks of one gate evaluation.
func (r *Recorder) GateChecked(model, env string, checks map[string]bool) {
	for check, ok := range checks {
		result := "failed"
		if ok {
			result = "passed"
		}
		r.gates.WithLabelValues(model, env, check, result).Inc()
	}
}

var (
	appInfo = prometheus.NewDesc("argocd_app_info", "Information about application.",
		[]string{"namespace", "name", "project", "autosync_enabled", "repo", "dest_server", "dest_namespace", "sync_status", "health_status", "operation"}, nil)
	modelInfo = prometheus.NewDesc("mlcd_model_version_info", "The model version Git names for each governed application.",
		[]string{"model", "environment", "version", "app"}, nil)
	appsetInfo = prometheus.NewDesc("argocd_appset_info", "Information about applicationset.",
		[]string{"namespace", "name", "resource_update_status"}, nil)
	appsetOwned = prometheus.NewDesc("argocd_appset_owned_applications", "Number of applications owned by the applicationset.",
		[]string{"namespace", "name"}, nil)
	rolloutPhase = prometheus.NewDesc("mlcd_rollout_phase", "1 for the phase each application's canary rollout is in.",
		[]string{"namespace", "name", "model", "environment", "phase"}, nil)
	rolloutStep = prometheus.NewDesc("mlcd_rollout_step", "The step index of each application's canary rollout.",
		[]string{"namespace", "name", "model", "environment"}, nil)
	rolloutWeight = prometheus.NewDesc("mlcd_rollout_weight", "The canary's share in percent of each application's rollout.",
		[]string{"namespace", "name", "model", "environment"}, nil)
)

// appCollector exports one series per Application at scrape time.
type appCollector struct {
	apps client.Reader
}

func (c *appCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- appInfo
	ch <- modelInfo
	ch <- appsetInfo
	ch <- appsetOwned
	ch <- rolloutPhase
	ch <- rolloutStep
	ch <- rolloutWeight
}

func (c *appCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list v1alpha1.ApplicationList
	if err := c.apps.List(ctx, &list); err != nil {
		ch <- prometheus.NewInvalidMetric(appInfo, err)
		return
	}
	for i := range list.Items {
		a := &list.Items[i]
		src := a.SourceOf()
		repo := ""
		if src != nil {
			repo = source.RedactURL(src.RepoURL) // a password written into the URL is no label
		}
		operation := ""
		if a.SyncRequested() || (a.Status.OperationState != nil && a.Status.OperationState.Phase == v1alpha1.PhaseRunning) {
			operation = "sync"
		}
		autosync := a.Spec.SyncPolicy != nil && a.Spec.SyncPolicy.Automated != nil
		ch <- prometheus.MustNewConstMetric(appInfo, prometheus.GaugeValue, 1,
			a.Namespace, a.Name, a.Spec.Project, strconv.FormatBool(autosync), repo,
			a.Spec.Destination.Server, a.Spec.Destination.Namespace,
			a.Status.Sync.Status, a.Status.Health.Status, operation)
		if m := a.Annotations[v1alpha1.AppAnnotationModel]; m != "" {
			ch <- prometheus.MustNewConstMetric(modelInfo, prometheus.GaugeValue, 1,
				m, a.Annotations[v1alpha1.AppAnnotationEnvironment], a.Annotations[v1alpha1.AppAnnotationVersion], a.Namespace+"/"+a.Name)
		}
	}
	owned := map[string]int{}
	for _, a := range list.Items {
		for _, ref := range a.OwnerReferences {
			if ref.Kind == "ApplicationSet" {
				owned[a.Namespace+"/"+ref.Name]++
			}
		}
	}
	var sets v1alpha1.ApplicationSetList
	if err := c.apps.List(ctx, &sets); err == nil {
		for _, set := range sets.Items {
			status := ""
			for _, cond := range set.Status.Conditions {
				if cond.Type == v1alpha1.AppSetConditionResourcesUpToDate {
					status = string(cond.Status)
				}
			}
			ch <- prometheus.MustNewConstMetric(appsetInfo, prometheus.GaugeValue, 1, set.Namespace, set.Name, status)
			ch <- prometheus.MustNewConstMetric(appsetOwned, prometheus.GaugeValue, float64(owned[set.Namespace+"/"+set.Name]), set.Namespace, set.Name)
		}
	}
	var rollouts v1alpha1.ModelRolloutList
	if err := c.apps.List(ctx, &rollouts); err != nil {
		return // no ModelRollout kind yet: no rollout series
	}
	for _, mr := range rollouts.Items {
		labels := []string{mr.Namespace, mr.Name, mr.Spec.Model, mr.Spec.Environment}
		for _, p := range []string{"Progressing", "Paused", "Healthy", "Degraded"} {
			v := 0.0
			if mr.Status.Phase == p {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(rolloutPhase, prometheus.GaugeValue, v, append(labels, p)...)
		}
		ch <- prometheus.MustNewConstMetric(rolloutStep, prometheus.GaugeValue, float64(mr.Status.CurrentStepIndex), labels...)
		ch <- prometheus.MustNewConstMetric(rolloutWeight, prometheus.GaugeValue, float64(mr.Status.Weight), labels...)
	}
}
