package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

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
	return v1alpha1.ParseHealthyVersions(cm.Data[v1alpha1.HealthyVersionsKey(app.Namespace, app.Name)]), nil
}

// setHealthyRecord writes the app's list into the record (its key only:
// a merge patch, so apps never overwrite each other) and the copy on the
// app.
func (r *ApplicationReconciler) setHealthyRecord(ctx context.Context, app *v1alpha1.Application, list []string) error {
	app.SetHealthyVersions(list)
	key, value := v1alpha1.HealthyVersionsKey(app.Namespace, app.Name), v1alpha1.FormatHealthyVersions(list)
	var patchValue any = value
	if value == "" {
		patchValue = nil // removes the key
	}
	patch, _ := json.Marshal(map[string]any{"data": map[string]any{key: patchValue}})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.Options.ControllerNamespace, Name: v1alpha1.HealthyVersionsConfigMap}}
	err := r.client.Patch(ctx, cm, client.RawPatch("application/merge-patch+json", patch))
	if apierrors.IsNotFound(err) {
		cm.Data = map[string]string{}
		if value != "" {
			cm.Data[key] = value
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

// recordHealthy adds version to the app's record; when the record has it
// already only the annotation copy is mended (no write).
func (r *ApplicationReconciler) recordHealthy(ctx context.Context, app *v1alpha1.Application, version string) error {
	list, err := r.healthyRecord(ctx, app)
	if err != nil {
		return err
	}
	if slices.Contains(list, version) {
		app.SetHealthyVersions(list)
		return nil
	}
	return r.setHealthyRecord(ctx, app, append(list, version))
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
		app.SetHealthyVersions(list)
		return nil
	}
	return r.setHealthyRecord(ctx, app, slices.Delete(list, i, i+1))
}
