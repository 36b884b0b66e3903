package controller

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/internal/source"
)

// Argo CD's labels for repository credential Secrets.
const (
	secretTypeLabel = "argocd.argoproj.io/secret-type"
	secretTypeRepo  = "repository"
	secretTypeCreds = "repo-creds"
)

// credentials finds the Secret for repoURL as Argo CD does: a
// "repository" Secret whose url equals repoURL wins, else the
// "repo-creds" template with the longest url prefix. Secrets are read only
// in the control-plane namespace; SSH known hosts not in the Secret come
// from its argocd-ssh-known-hosts-cm.
func (r *ApplicationReconciler) credentials(ctx context.Context, ns string, repoURL string) (source.Credentials, error) {
	creds, err := r.secretCredentials(ctx, ns, repoURL)
	if err != nil || creds.SSHPrivateKey == "" || creds.KnownHosts != "" {
		return creds, err
	}
	var cm corev1.ConfigMap
	if err := r.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1alpha1.SSHKnownHostsConfigMap}, &cm); err == nil {
		creds.KnownHosts = cm.Data["ssh_known_hosts"]
	} else if !apierrors.IsNotFound(err) {
		return creds, err
	}
	return creds, nil
}

func (r *ApplicationReconciler) secretCredentials(ctx context.Context, ns string, repoURL string) (source.Credentials, error) {
	var best *corev1.Secret
	bestLen := -1
	{
		var list corev1.SecretList
		if err := r.client.List(ctx, &list, client.InNamespace(ns), client.HasLabels{secretTypeLabel}); err != nil {
			return source.Credentials{}, err
		}
		for i := range list.Items {
			s := &list.Items[i]
			url := string(s.Data["url"])
			switch s.Labels[secretTypeLabel] {
			case secretTypeRepo:
				if normalizeURL(url) == normalizeURL(repoURL) {
					return credsFrom(s), nil
				}
			case secretTypeCreds:
				if strings.HasPrefix(normalizeURL(repoURL), normalizeURL(url)) && len(url) > bestLen {
					best, bestLen = s, len(url)
				}
			}
		}
	}
	if best != nil {
		return credsFrom(best), nil
	}
	return source.Credentials{}, nil
}

func normalizeURL(u string) string {
	return strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(u), "/"), ".git")
}

func credsFrom(s *corev1.Secret) source.Credentials {
	return source.Credentials{
		Username:              string(s.Data["username"]),
		Password:              string(s.Data["password"]),
		SSHPrivateKey:         string(s.Data["sshPrivateKey"]),
		InsecureIgnoreHostKey: string(s.Data["insecure"]) == "true",
		KnownHosts:            string(s.Data["sshKnownHosts"]),
	}
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
