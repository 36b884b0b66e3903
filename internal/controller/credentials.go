package controller

import (
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
// "repo-creds" template with the longest url prefix. Secrets are read in
// the app's namespace and in the controller's own namespace.
func (r *ApplicationReconciler) credentials(ctx context.Context, namespaces []string, repoURL string) (source.Credentials, error) {
	var best *corev1.Secret
	bestLen := -1
	for _, ns := range namespaces {
		var list corev1.SecretList
		if err := r.Client.List(ctx, &list, client.InNamespace(ns), client.HasLabels{secretTypeLabel}); err != nil {
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
