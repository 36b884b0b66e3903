package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlcd-dev/mlcd/internal/repocreds"
	"github.com/mlcd-dev/mlcd/internal/source"
)

const (
	secretTypeLabel = repocreds.SecretTypeLabel
	secretTypeRepo  = repocreds.SecretTypeRepo
)

// credentials for repoURL and an app of project (repocreds.Lookup).
func (r *ApplicationReconciler) credentials(ctx context.Context, ns, project, repoURL string) (source.Credentials, error) {
	return repocreds.Lookup(ctx, r.client, ns, project, repoURL)
}

// SelectCredentials is repocreds.Select.
func SelectCredentials(secrets []corev1.Secret, project, repoURL string) *corev1.Secret {
	return repocreds.Select(secrets, project, repoURL)
}

// RepositorySecret is an Argo CD repository Secret holding creds for url
// in namespace (the control-plane namespace), named after the URL.
func RepositorySecret(namespace, url string, creds source.Credentials) *corev1.Secret {
	sum := sha256.Sum256([]byte(url))
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: "repo-" + hex.EncodeToString(sum[:6]), Namespace: namespace,
		Labels: map[string]string{secretTypeLabel: secretTypeRepo},
	}, StringData: map[string]string{"url": url, "type": "git"}}
	for k, v := range map[string]string{"username": creds.Username, "password": creds.Password, "sshPrivateKey": creds.SSHPrivateKey, "sshKnownHosts": creds.KnownHosts} {
		if v != "" {
			s.StringData[k] = v
		}
	}
	if creds.InsecureIgnoreHostKey {
		s.StringData["insecure"] = "true"
	}
	return s
}
