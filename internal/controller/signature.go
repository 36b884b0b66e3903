package controller

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	gitsource "github.com/mlcd-dev/mlcd/internal/source"
)

// verifySignature refuses a revision whose commit is not signed by a key
// the app's project allows. Projects without signatureKeys allow any. Keys
// are read only from the control-plane namespace's ConfigMap: a tenant
// cannot bring its own.
func (r *ApplicationReconciler) verifySignature(ctx context.Context, proj *v1alpha1.AppProject, url, sha string) *stepError {
	if len(proj.Spec.SignatureKeys) == 0 {
		return nil
	}
	var cm corev1.ConfigMap
	err := r.client.Get(ctx, client.ObjectKey{Namespace: r.Options.ControllerNamespace, Name: v1alpha1.GPGKeysConfigMap}, &cm)
	if err != nil && !apierrors.IsNotFound(err) {
		return failTransient(v1alpha1.ConditionComparisonError, "read signature keys: %s", err)
	}
	allowed := map[string]string{}
	var missing []string
	for _, sk := range proj.Spec.SignatureKeys {
		if key, ok := gitsource.LookupKey(cm.Data, sk.KeyID); ok {
			allowed[sk.KeyID] = key
		} else {
			missing = append(missing, sk.KeyID)
		}
	}
	if len(allowed) == 0 {
		return failPermanent(v1alpha1.ConditionComparisonError, "project %s requires signed commits but none of its keys (%s) is in ConfigMap %s/%s", proj.Name, strings.Join(missing, ", "), r.Options.ControllerNamespace, v1alpha1.GPGKeysConfigMap)
	}
	commit, err := r.engine.Sources.Commit(ctx, url, sha)
	if err != nil {
		return failTransient(v1alpha1.ConditionComparisonError, "%s", err)
	}
	if _, err := gitsource.VerifyCommit(commit, allowed); err != nil {
		return failPermanent(v1alpha1.ConditionComparisonError, "revision %s is not synced: project %s requires a signature by one of its keys: %s", v1alpha1.ShortSHA(sha), proj.Name, err)
	}
	return nil
}
