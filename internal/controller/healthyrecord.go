package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// The record that exempts a rollback from the required-environment check
// (the versions an app ran Synced and Healthy) lives in a ConfigMap of the
// control-plane namespace, HealthyVersionsConfigMap, one key per app: a
// tenant who can write its Application (and so its annotations) cannot
// forge it. The app's mlcd.io/healthy-versions annotation is kept as a copy
// for people and the UI; no decision reads it.

// healthyKey is the app's key in the record: "<namespace>.<name>"
// (namespaces hold no dots).
func healthyKey(app *v1alpha1.Application) string { return app.Namespace + "." + app.Name }

// healthyRecord is the app's recorded healthy versions.
func (r *ApplicationReconciler) healthyRecord(ctx context.Context, app *v1alpha1.Application) ([]string, error) {
	var cm corev1.ConfigMap
	err := r.client.Get(ctx, client.ObjectKey{Namespace: r.Options.ControllerNamespace, Name: v1alpha1.HealthyVersionsConfigMap}, &cm)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return splitVersions(cm.Data[healthyKey(app)]), nil
}

func splitVersions(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// setHealthyRecord writes the app's list into the record (its key only:
// a merge patch, so apps never overwrite each other) and the copy on the
// app.
func (r *ApplicationReconciler) setHealthyRecord(ctx context.Context, app *v1alpha1.Application, list []string) error {
	app.SetHealthyVersions(list)
	list = app.HealthyVersions() // bounded as the annotation is
	var value any = strings.Join(list, ",")
	if len(list) == 0 {
		value = nil
	}
	patch, _ := json.Marshal(map[string]any{"data": map[string]any{healthyKey(app): value}})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.Options.ControllerNamespace, Name: v1alpha1.HealthyVersionsConfigMap}}
	err := r.client.Patch(ctx, cm, client.RawPatch("application/merge-patch+json", patch))
	if apierrors.IsNotFound(err) {
		cm.Data = map[string]string{}
		if len(list) > 0 {
			cm.Data[healthyKey(app)] = strings.Join(list, ",")
		}
		err = r.client.Create(ctx, cm)
		if apierrors.IsAlreadyExists(err) {
			err = r.client.Patch(ctx, cm, client.RawPatch("application/merge-patch+json", patch))
		}
	}
	if err != nil {
		return fmt.Errorf("record healthy versions in %s: %w", v1alpha1.HealthyVersionsConfigMap, err)
	}
	return nil
}

// recordHealthy adds version to the app's record.
func (r *ApplicationReconciler) recordHealthy(ctx context.Context, app *v1alpha1.Application, version string) error {
	list, err := r.healthyRecord(ctx, app)
	if err != nil {
		return err
	}
	if slices.Contains(list, version) && slices.Contains(app.HealthyVersions(), version) {
		return nil
	}
	if !slices.Contains(list, version) {
		list = append(list, version)
	}
	return r.setHealthyRecord(ctx, app, list)
}

// forgetReverted drops a version a revert undid from the app's record: it
// is no longer exempt.
func (r *ApplicationReconciler) forgetReverted(ctx context.Context, app *v1alpha1.Application, version string) error {
	list, err := r.healthyRecord(ctx, app)
	if err != nil {
		return err
	}
	i := slices.Index(list, version)
	if i < 0 {
		app.SetHealthyVersions(slices.DeleteFunc(app.HealthyVersions(), func(v string) bool { return v == version }))
		return nil
	}
	return r.setHealthyRecord(ctx, app, slices.Delete(list, i, i+1))
}
