// Package repocreds answers one question: which credentials serve a
// repository URL for an app of a project? It reads Argo CD's repository
// Secrets (`argocd.argoproj.io/secret-type: repository` and `repo-creds`)
// of the control-plane namespace, matching parsed URLs (scheme, host, port,
// whole path segments: source.CredentialsCover), never string prefixes,
// and honours a Secret's `project` key. The controller's fetches and every
// write (revert, promotion, the API's rollback) use it, so a write goes out
// with the repository's own credentials and no others.
package repocreds

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/promote"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// Argo CD's labels for repository credential Secrets.
const (
	SecretTypeLabel = "argocd.argoproj.io/secret-type"
	SecretTypeRepo  = "repository"
	SecretTypeCreds = "repo-creds"
	// Write credentials (Argo CD's source hydrator): used only for
	// pushes, when a repository's writes need other credentials than its
	// reads.
	SecretTypeRepoWrite  = "repository-write"
	SecretTypeCredsWrite = "repo-write-creds"
)

// Lookup finds the credentials for repoURL and an app of project in
// namespace: a "repository" Secret for the same repository wins, else the
// "repo-creds" template whose URL covers the most of repoURL's path. A
// Secret with a `project` key serves only that project's apps and is
// preferred over an unscoped one. SSH known hosts not in the Secret come
// from the namespace's argocd-ssh-known-hosts-cm. No Secret: anonymous.
func Lookup(ctx context.Context, c client.Reader, namespace, project, repoURL string) (source.Credentials, error) {
	return lookup(ctx, c, namespace, project, repoURL, false)
}

// LookupWrite is Lookup for a push: a `repository-write` Secret for the
// repository (or a `repo-write-creds` template covering it) wins, else the
// read credentials serve.
func LookupWrite(ctx context.Context, c client.Reader, namespace, project, repoURL string) (source.Credentials, error) {
	return lookup(ctx, c, namespace, project, repoURL, true)
}

func lookup(ctx context.Context, c client.Reader, namespace, project, repoURL string, write bool) (source.Credentials, error) {
	var list corev1.SecretList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.HasLabels{SecretTypeLabel}); err != nil {
		return source.Credentials{}, err
	}
	var s *corev1.Secret
	if write {
		s = selectOf(list.Items, project, repoURL, SecretTypeRepoWrite, SecretTypeCredsWrite)
	}
	if s == nil {
		s = Select(list.Items, project, repoURL)
	}
	if s == nil {
		return source.Credentials{}, nil
	}
	creds := FromSecret(s)
	if creds.SSHPrivateKey == "" || creds.KnownHosts != "" {
		return creds, nil
	}
	var cm corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: v1alpha1.SSHKnownHostsConfigMap}, &cm); err == nil {
		creds.KnownHosts = cm.Data["ssh_known_hosts"]
	} else if !apierrors.IsNotFound(err) {
		return creds, err
	}
	return creds, nil
}

// Select picks the Secret for repoURL and an app of project from secrets
// (see Lookup); nil when none serves it.
func Select(secrets []corev1.Secret, project, repoURL string) *corev1.Secret {
	return selectOf(secrets, project, repoURL, SecretTypeRepo, SecretTypeCreds)
}

// selectOf is Select over Secrets of the types repoType (one repository)
// and credsType (a template).
func selectOf(secrets []corev1.Secret, project, repoURL, repoType, credsType string) *corev1.Secret {
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
		switch s.Labels[SecretTypeLabel] {
		case repoType:
			if !source.SameRepo(url, repoURL) {
				continue
			}
			rank = 1 << 20
		case credsType:
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

// FromSecret reads a repository Secret's credentials.
func FromSecret(s *corev1.Secret) source.Credentials {
	return source.Credentials{
		Username:              string(s.Data["username"]),
		Password:              string(s.Data["password"]),
		SSHPrivateKey:         string(s.Data["sshPrivateKey"]),
		InsecureIgnoreHostKey: string(s.Data["insecure"]) == "true",
		KnownHosts:            string(s.Data["sshKnownHosts"]),
	}
}

// SigningSecret is the Secret of the control-plane namespace whose
// `signingKey` (an armored OpenPGP or an unencrypted OpenSSH private key)
// signs the commits mlcd makes, so a project's signatureKeys can require
// signed reverts and promotions.
const SigningSecret = "mlcd-signing-key"

// ErrWriteRefused is a write the app's project (or the app itself) does
// not allow: nothing is pushed.
var ErrWriteRefused = errors.New("nothing is pushed")

// WriteRemote is where a push for app goes: repoURL must be one of the
// app's own sources and one its project — read now, from namespace (the
// control-plane namespace) — allows for the app's namespace; the push
// carries the repository's write credentials (LookupWrite) and, when the
// SigningSecret exists, the key that signs mlcd's commits. The controller
// (reverts, promotions, notes) and the API (rollback) both ask it; a
// refusal wraps ErrWriteRefused.
func WriteRemote(ctx context.Context, c client.Reader, namespace string, app *v1alpha1.Application, repoURL string) (promote.Remote, error) {
	sources := app.Spec.Sources
	if app.Spec.Source != nil {
		sources = append([]v1alpha1.ApplicationSource{*app.Spec.Source}, sources...)
	}
	if !slices.ContainsFunc(sources, func(s v1alpha1.ApplicationSource) bool { return source.SameRepo(s.RepoURL, repoURL) }) {
		return promote.Remote{}, fmt.Errorf("repository %s is not the application's own source: %w", source.RedactURL(repoURL), ErrWriteRefused)
	}
	name := cmp.Or(app.Spec.Project, v1alpha1.DefaultProject)
	proj := &v1alpha1.AppProject{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, proj); err != nil {
		if apierrors.IsNotFound(err) {
			return promote.Remote{}, fmt.Errorf("project %s does not exist: %w", name, ErrWriteRefused)
		}
		return promote.Remote{}, err
	}
	if app.Namespace != namespace {
		if err := proj.PermitsSourceNamespace(app.Namespace); err != nil {
			return promote.Remote{}, fmt.Errorf("%w: %w", err, ErrWriteRefused)
		}
	}
	if err := proj.PermitsSource(repoURL); err != nil {
		return promote.Remote{}, fmt.Errorf("%w: %w", err, ErrWriteRefused)
	}
	creds, err := LookupWrite(ctx, c, namespace, proj.Name, repoURL)
	if err != nil {
		return promote.Remote{}, fmt.Errorf("read repository credentials: %w", err)
	}
	remote := promote.Remote{URL: repoURL, Creds: creds}
	key, err := SigningKey(ctx, c, namespace)
	if err != nil {
		return promote.Remote{}, fmt.Errorf("read the signing key: %w", err)
	}
	if len(key) > 0 {
		if remote.Signer, _, err = promote.ParseSigner(key); err != nil {
			return promote.Remote{}, fmt.Errorf("Secret %s: %w", SigningSecret, err)
		}
	}
	return remote, nil
}

// SigningKey is the signing key's data, nil when none is configured.
func SigningKey(ctx context.Context, c client.Reader, namespace string) ([]byte, error) {
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: SigningSecret}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return s.Data["signingKey"], nil
}
