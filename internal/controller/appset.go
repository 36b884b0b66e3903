package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/appset"
)

// ApplicationSetReconciler keeps each ApplicationSet's Applications equal
// to what its generators and template produce. It never deletes on a
// failed generation: a generator or template error keeps every existing
// app as it is and says why in the set's conditions; only a successful
// generation may delete, and one that would delete more than half of the
// set's apps at once waits for mlcd.io/allow-mass-delete: "true".
type ApplicationSetReconciler struct {
	apps *ApplicationReconciler
}

func (r *ApplicationSetReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ApplicationSet{}).
		Owns(&v1alpha1.Application{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4, SkipNameValidation: ptr(true)}).
		Complete(r)
}

// Reconcile generates, renders and applies one set.
func (r *ApplicationSetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ar := r.apps
	if req.Namespace != ar.Options.ControllerNamespace && !v1alpha1.GlobAny(ar.Options.AppSetNamespaces, req.Namespace) {
		return ctrl.Result{}, nil
	}
	set := &v1alpha1.ApplicationSet{}
	if err := ar.client.Get(ctx, req.NamespacedName, set); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ar.owns(set) {
		return ctrl.Result{}, nil // another shard's
	}
	if set.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // owner references delete the apps
	}
	if ar, ok := r.apps.Options.Recorder.(AppSetRecorder); ok {
		defer func(started time.Time) { ar.AppSetReconciled(set.Namespace, set.Name, time.Since(started)) }(time.Now())
	}
	before := set.DeepCopy()
	_, refresh := set.Annotations[v1alpha1.RefreshAnnotation]
	res, err := r.sync(ctx, set, refresh)
	if refresh {
		delete(set.Annotations, v1alpha1.RefreshAnnotation)
	}
	if !equality.Semantic.DeepEqual(before.Status, set.Status) || refresh {
		if perr := ar.client.Patch(ctx, set, client.MergeFrom(before)); perr != nil && !apierrors.IsNotFound(perr) {
			return ctrl.Result{}, errors.Join(err, perr)
		}
	}
	return res, err
}

// sync is one generation: on any failure the existing apps stay.
func (r *ApplicationSetReconciler) sync(ctx context.Context, set *v1alpha1.ApplicationSet, refresh bool) (ctrl.Result, error) {
	ar := r.apps
	poll := ctrl.Result{RequeueAfter: ar.jitter(ar.Options.PollInterval)}
	clusterList, err := ar.clusterList(ctx)
	var apps []*v1alpha1.Application
	var params int
	if err == nil {
		apps, params, err = appset.Apps(set, appset.Inputs{Repos: &setRepos{ctx: ctx, r: ar, refresh: refresh, set: set}, Clusters: clusterList})
	}
	if err != nil {
		setAppSetCondition(set, v1alpha1.AppSetConditionErrorOccurred, "True", "ApplicationGenerationFromParamsError", err.Error()+"; existing applications are kept")
		setAppSetCondition(set, v1alpha1.AppSetConditionParametersGenerated, "False", "ErrorOccurred", err.Error())
		ar.event(set, eventWarning, "GenerationFailed", "%s; existing applications are kept", err)
		var ge *appset.GeneratorError
		if params == 0 || errors.As(err, &ge) {
			return ctrl.Result{}, err // transient (Git, clusters): backoff
		}
		// The size bound or the template: until the set or its inputs change.
		ar.requeueAfter(client.ObjectKeyFromObject(set), poll.RequeueAfter)
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	setAppSetCondition(set, v1alpha1.AppSetConditionParametersGenerated, "True", "ParametersGenerated", fmt.Sprintf("%d parameter sets", params))
	msg, err := r.apply(ctx, set, apps)
	if err != nil {
		setAppSetCondition(set, v1alpha1.AppSetConditionErrorOccurred, "True", "ApplicationSetUpdateError", err.Error())
		return ctrl.Result{}, err
	}
	if msg != "" {
		setAppSetCondition(set, v1alpha1.AppSetConditionErrorOccurred, "True", "MassDeletionHeld", msg)
		setAppSetCondition(set, v1alpha1.AppSetConditionResourcesUpToDate, "False", "MassDeletionHeld", msg)
	} else {
		setAppSetCondition(set, v1alpha1.AppSetConditionErrorOccurred, "False", "ApplicationSetUpToDate", "")
		setAppSetCondition(set, v1alpha1.AppSetConditionResourcesUpToDate, "True", "ApplicationSetUpToDate", "all applications are up to date")
	}
	return poll, nil
}

// apply creates, updates and deletes the set's apps as its
// applicationsSync policy allows. It returns a message when a mass
// deletion is held.
func (r *ApplicationSetReconciler) apply(ctx context.Context, set *v1alpha1.ApplicationSet, apps []*v1alpha1.Application) (string, error) {
	ar := r.apps
	policy := "sync"
	if set.Spec.SyncPolicy != nil && set.Spec.SyncPolicy.ApplicationsSync != "" {
		policy = set.Spec.SyncPolicy.ApplicationsSync
	}
	mayUpdate := policy != "create-only" && policy != "create-delete"
	mayDelete := policy == "sync" || policy == "create-delete"
	var existing v1alpha1.ApplicationList
	if err := ar.client.List(ctx, &existing, client.MatchingLabels{v1alpha1.AppSetLabel: set.Name}); err != nil {
		return "", err
	}
	owned := map[string]*v1alpha1.Application{}
	for i := range existing.Items {
		a := &existing.Items[i]
		if metav1.IsControlledBy(a, set) {
			owned[a.Namespace+"/"+a.Name] = a
		}
	}
	want := map[string]bool{}
	var resources []v1alpha1.ApplicationSetResource
	var clashes []string
	for _, app := range apps {
		key := app.Namespace + "/" + app.Name
		want[key] = true
		resources = append(resources, v1alpha1.ApplicationSetResource{Name: app.Name, Namespace: app.Namespace})
		live, ok := owned[key]
		if !ok {
			if err := controllerutil.SetControllerReference(set, app, ar.client.Scheme()); err != nil {
				return "", err
			}
			err := ar.client.Create(ctx, app)
			if apierrors.IsAlreadyExists(err) {
				clashes = append(clashes, key)
				continue
			}
			if err != nil {
				return "", fmt.Errorf("create Application %s: %w", key, err)
			}
			continue
		}
		if !mayUpdate {
			continue
		}
		before := live.DeepCopy()
		live.Spec = app.Spec
		live.Labels = mergeMaps(live.Labels, app.Labels)
		live.Annotations = mergeMaps(live.Annotations, app.Annotations)
		for _, f := range app.Finalizers {
			if !slices.Contains(live.Finalizers, f) {
				live.Finalizers = append(live.Finalizers, f)
			}
		}
		if !equality.Semantic.DeepEqual(before.Spec, live.Spec) || !maps.Equal(before.Labels, live.Labels) || !maps.Equal(before.Annotations, live.Annotations) || len(before.Finalizers) != len(live.Finalizers) {
			if err := ar.client.Patch(ctx, live, client.MergeFrom(before)); err != nil {
				return "", fmt.Errorf("update Application %s: %w", key, err)
			}
		}
	}
	set.Status.Resources = resources
	if len(clashes) > 0 {
		return "", fmt.Errorf("Applications %s exist and are not this set's: they are left alone (rename the template or delete them)", strings.Join(clashes, ", "))
	}
	if !mayDelete {
		return "", nil
	}
	var stale []*v1alpha1.Application
	for key, a := range owned {
		if !want[key] {
			stale = append(stale, a)
		}
	}
	if len(stale) > 1 && len(stale)*2 > len(owned) && set.Annotations[v1alpha1.AllowMassDeleteAnnotation] != "true" {
		return fmt.Sprintf("this generation would delete %d of %d applications at once; nothing was deleted (annotate the set %s: \"true\" to allow)", len(stale), len(owned), v1alpha1.AllowMassDeleteAnnotation), nil
	}
	for _, a := range stale {
		if err := ar.client.Delete(ctx, a); err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("delete Application %s/%s: %w", a.Namespace, a.Name, err)
		}
		ar.event(set, eventNormal, "ApplicationDeleted", "deleted %s/%s: no longer generated", a.Namespace, a.Name)
	}
	return "", nil
}

func mergeMaps(a, b map[string]string) map[string]string {
	if len(b) == 0 {
		return a
	}
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

func setAppSetCondition(set *v1alpha1.ApplicationSet, typ, status, reason, msg string) {
	for i, c := range set.Status.Conditions {
		if c.Type == typ {
			if c.Status != status || c.Reason != reason || c.Message != msg {
				now := metav1.Now()
				set.Status.Conditions[i] = v1alpha1.ApplicationSetCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: &now}
			}
			return
		}
	}
	now := metav1.Now()
	set.Status.Conditions = append(set.Status.Conditions, v1alpha1.ApplicationSetCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: &now})
}

// setRepos checks repositories out for git generators, with the
// credentials of the control-plane namespace. When the template names its
// project literally, a generator's repository must be one that project's
// sourceRepos allow — checked before any request — and the project's own
// credentials serve it; a templated project gets unscoped credentials only
// (each generated app is checked against its own project when it syncs).
type setRepos struct {
	ctx     context.Context
	r       *ApplicationReconciler
	refresh bool
	set     *v1alpha1.ApplicationSet
}

func (s *setRepos) project() (string, *v1alpha1.AppProject, error) {
	name := s.set.Spec.Template.Spec.Project
	if strings.Contains(name, "{{") {
		return "", nil, nil
	}
	if name == "" {
		name = v1alpha1.DefaultProject
	}
	proj := &v1alpha1.AppProject{}
	if err := s.r.client.Get(s.ctx, client.ObjectKey{Namespace: s.r.Options.ControllerNamespace, Name: name}, proj); err != nil {
		return name, nil, fmt.Errorf("read the template's project %s: %w", name, err)
	}
	return name, proj, nil
}

func (s *setRepos) Checkout(repoURL, revision string) (string, error) {
	projName, proj, err := s.project()
	if err != nil {
		return "", err
	}
	if proj != nil {
		if err := proj.PermitsSource(repoURL); err != nil {
			return "", fmt.Errorf("git generator: %w", err)
		}
	}
	creds, err := s.r.repoCredentials(s.ctx, projName, repoURL)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	sha, err := s.r.engine.Sources.Resolve(ctx, repoURL, revision, creds, s.refresh)
	if err != nil {
		return "", err
	}
	return s.r.engine.Sources.Checkout(ctx, repoURL, sha)
}
