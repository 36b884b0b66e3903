package controller

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
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
		return nil, fail(v1alpha1.ConditionInvalidSpecError, true, "application references project %s which does not exist in the control-plane namespace %s", name, r.Options.ControllerNamespace)
	}
	if err != nil {
		return nil, fail(v1alpha1.ConditionComparisonError, true, "read project %s: %s", name, err)
	}
	if app.Namespace != r.Options.ControllerNamespace {
		if err := proj.PermitsSourceNamespace(app.Namespace); err != nil {
			return nil, fail(v1alpha1.ConditionInvalidSpecError, false, "%s", err)
		}
	}
	return proj, nil
}

// EnsureDefaultProject creates the "default" AppProject in the
// control-plane namespace (which must exist) when it is absent (as Argo CD
// does at install). A project deleted later is not re-created until the
// next start.
func EnsureDefaultProject(ctx context.Context, c client.Client, namespace string) error {
	err := c.Create(ctx, v1alpha1.NewDefaultProject(namespace))
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create the default AppProject in %s: %w", namespace, err)
	}
	return nil
}
