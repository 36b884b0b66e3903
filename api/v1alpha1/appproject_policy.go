package v1alpha1

import (
	"cmp"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"path"
	"strings"
)

// DefaultProject is the project every namespace has implicitly, as Argo CD's
// "default": any repo, any destination.
const DefaultProject = "default"

// InClusterServer is the destination meaning "the cluster mlcd runs in".
const InClusterServer = "https://kubernetes.default.svc"

func globMatch(pattern, s string) bool {
	if pattern == "*" || pattern == s {
		return true
	}
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// PermitsSource reports whether the project allows repoURL.
func (p *AppProject) PermitsSource(repoURL string) error {
	for _, r := range p.Spec.SourceRepos {
		if globMatch(r, repoURL) || globMatch(strings.TrimSuffix(r, ".git"), strings.TrimSuffix(repoURL, ".git")) {
			return nil
		}
	}
	return fmt.Errorf("application repo %s is not permitted in project '%s'", repoURL, p.Name)
}

// PermitsDestination reports whether the project allows the destination.
// A destination namespace "" (cluster-scoped objects) needs a "*" entry.
func (p *AppProject) PermitsDestination(d ApplicationDestination) error {
	for _, pd := range p.Spec.Destinations {
		serverOK := (pd.Server != "" && globMatch(pd.Server, d.Server)) || (pd.Name != "" && globMatch(pd.Name, d.Name))
		if serverOK && globMatch(pd.Namespace, d.Namespace) {
			return nil
		}
	}
	return fmt.Errorf("application destination {%s %s} is not permitted in project '%s'", cmp.Or(d.Server, d.Name), d.Namespace, p.Name)
}

// PermitsKind reports whether the project allows a kind: cluster-scoped
// kinds must be whitelisted (Namespace always is, for CreateNamespace),
// namespaced kinds must not be blacklisted (or must be whitelisted when a
// whitelist is set).
func (p *AppProject) PermitsKind(group, kind string, namespaced bool) error {
	match := func(list []metav1.GroupKind) bool {
		for _, gk := range list {
			if globMatch(gk.Group, group) && globMatch(gk.Kind, kind) {
				return true
			}
		}
		return false
	}
	if !namespaced {
		if match(p.Spec.ClusterResourceBlacklist) || !match(p.Spec.ClusterResourceWhitelist) {
			return fmt.Errorf("cluster-scoped resource %s is not permitted in project '%s'", groupKind(group, kind), p.Name)
		}
		return nil
	}
	if match(p.Spec.NamespaceResourceBlacklist) ||
		(len(p.Spec.NamespaceResourceWhitelist) > 0 && !match(p.Spec.NamespaceResourceWhitelist)) {
		return fmt.Errorf("namespaced resource %s is not permitted in project '%s'", groupKind(group, kind), p.Name)
	}
	return nil
}

func groupKind(group, kind string) string {
	if group == "" {
		return kind
	}
	return group + "/" + kind
}

// Permissive returns the implicit default project.
func Permissive(namespace string) *AppProject {
	p := &AppProject{Spec: AppProjectSpec{
		SourceRepos:              []string{"*"},
		Destinations:             []ApplicationDestination{{Server: "*", Name: "*", Namespace: "*"}},
		ClusterResourceWhitelist: nil,
	}}
	p.Name, p.Namespace = DefaultProject, namespace
	p.Spec.ClusterResourceWhitelist = append(p.Spec.ClusterResourceWhitelist, anyGroupKind)
	return p
}
