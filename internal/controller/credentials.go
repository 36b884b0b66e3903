package controller

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"context"

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
// "repository" Secret for the same repository wins, else the "repo-creds"
// template whose URL covers the most of repoURL's path. URLs match on
// their parsed scheme, host, port and whole path segments
// (source.CredentialsCover), never as strings: a template for
// https://git.corp.example serves nothing at
// https://git.corp.example@evil.example/. A Secret with a `project` key
// serves only that project's apps (Argo CD's project-scoped repositories)
// and is preferred over an unscoped one. Secrets are read only in the
// control-plane namespace; SSH known hosts not in the Secret come from its
// argocd-ssh-known-hosts-cm.
func (r *ApplicationReconciler) credentials(ctx context.Context, ns, project, repoURL string) (source.Credentials, error) {
	creds, err := r.secretCredentials(ctx, ns, project, repoURL)
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

func (r *ApplicationReconciler) secretCredentials(ctx context.Context, ns, project, repoURL string) (source.Credentials, error) {
	var list corev1.SecretList
	if err := r.client.List(ctx, &list, client.InNamespace(ns), client.HasLabels{secretTypeLabel}); err != nil {
		return source.Credentials{}, err
	}
	if s := SelectCredentials(list.Items, project, repoURL); s != nil {
		return credsFrom(s), nil
	}
	return source.Credentials{}, nil
}

// SelectCredentials picks the repository Secret for repoURL and an app of
// project from secrets (see credentials); nil when none serves it.
func SelectCredentials(secrets []corev1.Secret, project, repoURL string) *corev1.Secret {
	var best *corev1.Secret
	bestRank := -1
	for i := range secrets {
		s := &secrets[i]
		scope := string(s.Data["project"])
		if scope != "" && scope != project {
			continue
		}
		url := string(s.Data["url"])
		rank := 0
		switch s.Labels[secretTypeLabel] {
		case secretTypeRepo:
			if !source.SameRepo(url, repoURL) {
				continue
			}
			rank = 1 << 20
		case secretTypeCreds:
			if !source.CredentialsCover(url, repoURL) {
				continue
			}
			p, _ := source.ParseRepoURL(url)
			rank = len(p.Path) * 2
		default:
			continue
		}
		if scope != "" {
			rank++ // a project's own Secret before a shared one
		}
		if rank > bestRank {
			best, bestRank = s, rank
		}
	}
	return best
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
