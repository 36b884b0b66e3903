package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
)

// Tenancy as Argo CD's "apps in any namespace": AppProjects live only in
// the control-plane namespace; an Application there may use any project;
// one in another namespace is reconciled only if that namespace matches
// --app-namespaces and the project's spec.sourceNamespaces.

// namespaceWatched reports whether Applications in ns are reconciled at
// all: the control-plane namespace and those matching AppNamespaces.
func (r *ApplicationReconciler) namespaceWatched(ns string) bool {
	return ns == r.Options.ControllerNamespace || v1alpha1.GlobAny(r.Options.AppNamespaces, ns)
}

// projectOf returns the app's AppProject from the control-plane namespace
// and checks that the app's namespace may use it.
func (r *ApplicationReconciler) projectOf(ctx context.Context, app *v1alpha1.Application) (*v1alpha1.AppProject, *stepError) {
	name := app.Spec.Project
	if name == "" {
		name = v1alpha1.DefaultProject
	}
	proj := &v1alpha1.AppProject{}
	err := r.client.Get(ctx, client.ObjectKey{Namespace: r.Options.ControllerNamespace, Name: name}, proj)
	if apierrors.IsNotFound(err) {
		return nil, failTransient(v1alpha1.ConditionInvalidSpecError, "application references project %s which does not exist in the control-plane namespace %s", name, r.Options.ControllerNamespace)
	}
	if err != nil {
		return nil, failTransient(v1alpha1.ConditionComparisonError, "read project %s: %s", name, err)
	}
	if app.Namespace != r.Options.ControllerNamespace {
		if err := proj.PermitsSourceNamespace(app.Namespace); err != nil {
			return nil, failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
		}
	}
	if err := proj.Unenforced(); err != nil {
		return nil, failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
	}
	return proj, nil
}

// EnsureDefaultProject creates the "default" AppProject in the
// control-plane namespace (which must exist) when it is absent (as Argo CD
// does at install). A project deleted later is not re-created until the
// next start.
func EnsureDefaultProject(ctx context.Context, c client.Client, namespace string) error {
	p := v1alpha1.NewDefaultProject(namespace)
	err := c.Get(ctx, client.ObjectKeyFromObject(p), &v1alpha1.AppProject{})
	if err == nil {
		return nil // whatever it says now is the user's
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("read the default AppProject in %s: %w", namespace, err)
	}
	// Created by a server-side apply, not a POST: kube-apiserver holds
	// every POST of a custom resource for 2 s after its CRD is established
	// (for servers of an HA control plane that have not seen it yet), and
	// on a fresh install this is the first one. A server that has not seen
	// the CRD yet answers NotFound: asked again.
	var last error
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		last = c.Patch(ctx, v1alpha1.NewDefaultProject(namespace), client.Apply, client.FieldOwner(apply.FieldManager))
		switch {
		case last == nil || apierrors.IsConflict(last):
			return true, nil // a conflict: someone created it meanwhile
		case apierrors.IsNotFound(last) || meta.IsNoMatchError(last):
			return false, nil
		}
		return false, last
	})
	if wait.Interrupted(err) {
		err = errors.Join(err, last) // timed out: say what the server last answered
	}
	if err != nil {
		return fmt.Errorf("create the default AppProject in %s: %w", namespace, err)
	}
	return nil
}
