package controller

import (
	"crypto/sha256"
	"encoding/hex"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlcd-dev/mlcd/internal/repocreds"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// RepositorySecret is an Argo CD repository Secret holding creds for url
// in namespace (the control-plane namespace), named after the URL.
func RepositorySecret(namespace, url string, creds source.Credentials) *corev1.Secret {
	sum := sha256.Sum256([]byte(url))
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: "repo-" + hex.EncodeToString(sum[:6]), Namespace: namespace,
		Labels: map[string]string{repocreds.SecretTypeLabel: repocreds.SecretTypeRepo},
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
