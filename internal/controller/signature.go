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

// GPGKeysConfigMap holds the public keys that AppProject signatureKeys
// name, as in Argo CD: data key = key ID, value = armored OpenPGP public
// key. mlcd also accepts SSH keys under any data key, value = an
// authorized_keys line; a project names them by fingerprint
// ("SHA256:…").
const GPGKeysConfigMap = "argocd-gpg-keys-cm"

// verifySignature refuses a revision whose commit is not signed by a key
// the app's project allows. Projects without signatureKeys allow any.
func (r *ApplicationReconciler) verifySignature(ctx context.Context, app *v1alpha1.Application, proj *v1alpha1.AppProject, url, sha string) *stepError {
	if len(proj.Spec.SignatureKeys) == 0 {
		return nil
	}
	known := map[string]string{}
	for _, ns := range uniq(r.Options.ControllerNamespace, app.Namespace) {
		if ns == "" {
			continue
		}
		var cm corev1.ConfigMap
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: GPGKeysConfigMap}, &cm)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fail(v1alpha1.ConditionComparisonError, true, "read signature keys: %s", err)
		}
		for k, v := range cm.Data {
			known[k] = v
		}
	}
	allowed := map[string]string{}
	var missing []string
	for _, sk := range proj.Spec.SignatureKeys {
		if key, ok := gitsource.LookupKey(known, sk.KeyID); ok {
			allowed[sk.KeyID] = key
		} else {
			missing = append(missing, sk.KeyID)
		}
	}
	if len(allowed) == 0 {
		return fail(v1alpha1.ConditionComparisonError, false, "project %s requires signed commits but none of its keys (%s) is in ConfigMap %s", proj.Name, strings.Join(missing, ", "), GPGKeysConfigMap)
	}
	commit, err := r.Sources.Commit(ctx, url, sha)
	if err != nil {
		return fail(v1alpha1.ConditionComparisonError, true, "%s", err)
	}
	if _, err := gitsource.VerifyCommit(commit, allowed); err != nil {
		return fail(v1alpha1.ConditionComparisonError, false, "revision %s is not synced: project %s requires a signature by one of its keys: %s", shortSHA(sha), proj.Name, err)
	}
	return nil
}
