package v1alpha1

import (
	"cmp"
	"fmt"
	"regexp"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultProject is the project mlcd creates in the control-plane
// namespace at start when it is absent, as Argo CD's "default": any repo,
// any destination, any kind.
const DefaultProject = "default"

// InClusterServer is the destination meaning "the cluster mlcd runs in".
const InClusterServer = "https://kubernetes.default.svc"

var (
	globMu    sync.Mutex
	globCache = map[string]*regexp.Regexp{}
)

// Glob reports whether s matches pattern, where * matches any run of
// characters (slashes included, as Argo CD's project globs), ? one
// character and [...] a class.
func Glob(pattern, s string) bool {
	if pattern == "*" || pattern == s {
		return true
	}
	globMu.Lock()
	re, ok := globCache[pattern]
	if !ok {
		var b strings.Builder
		b.WriteString("^")
		for i := 0; i < len(pattern); i++ {
			switch c := pattern[i]; c {
			case '*':
				b.WriteString(".*")
			case '?':
				b.WriteString(".")
			case '[':
				if j := strings.IndexByte(pattern[i:], ']'); j > 0 {
					class := pattern[i+1 : i+j]
					if strings.HasPrefix(class, "!") {
						class = "^" + class[1:]
					}
					b.WriteString("[" + class + "]")
					i += j
				} else {
					b.WriteString(regexp.QuoteMeta("["))
				}
			default:
				b.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		b.WriteString("$")
		re, _ = regexp.Compile(b.String())
		globCache[pattern] = re
	}
	globMu.Unlock()
	return re != nil && re.MatchString(s)
}

// GlobAny reports whether s matches any of the patterns; a pattern
// starting with ! denies what it matches, whatever the others allow.
func GlobAny(patterns []string, s string) bool {
	allowed := false
	for _, p := range patterns {
		if neg, ok := strings.CutPrefix(p, "!"); ok {
			if Glob(neg, s) {
				return false
			}
			continue
		}
		if Glob(p, s) {
			allowed = true
		}
	}
	return allowed
}

// PermitsSource reports whether the project allows repoURL (sourceRepos:
// globs, "!" denies).
func (p *AppProject) PermitsSource(repoURL string) error {
	norm := func(u string) string { return strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git") }
	var patterns []string
	for _, r := range p.Spec.SourceRepos {
		patterns = append(patterns, norm(r))
	}
	if GlobAny(patterns, norm(repoURL)) {
		return nil
	}
	return fmt.Errorf("application repo %s is not permitted in project '%s' (spec.sourceRepos)", repoURL, p.Name)
}

// PermitsDestination reports whether the project allows the destination:
// an entry whose server (or name) and namespace match allows it; an entry
// with a "!" pattern that matches denies it, whatever others allow.
func (p *AppProject) PermitsDestination(d ApplicationDestination) error {
	allowed := false
	for _, pd := range p.Spec.Destinations {
		server, serverNeg := strings.CutPrefix(pd.Server, "!")
		name, nameNeg := strings.CutPrefix(pd.Name, "!")
		ns, nsNeg := strings.CutPrefix(pd.Namespace, "!")
		serverOK := (server != "" && Glob(server, d.Server)) || (name != "" && Glob(name, d.Name))
		nsOK := Glob(ns, d.Namespace)
		if serverNeg || nameNeg || nsNeg {
			if serverOK && nsOK {
				return fmt.Errorf("application destination {%s %s} is denied in project '%s' by destination {%s %s}", cmp.Or(d.Server, d.Name), d.Namespace, p.Name, cmp.Or(pd.Server, pd.Name), pd.Namespace)
			}
			continue
		}
		if serverOK && nsOK {
			allowed = true
		}
	}
	if allowed {
		return nil
	}
	return fmt.Errorf("application destination {%s %s} is not permitted in project '%s' (spec.destinations)", cmp.Or(d.Server, d.Name), d.Namespace, p.Name)
}

// PermitsSourceNamespace reports whether Applications in namespace ns may
// use the project (spec.sourceNamespaces; apps in the control-plane
// namespace always may).
func (p *AppProject) PermitsSourceNamespace(ns string) error {
	if ns == p.Namespace || GlobAny(p.Spec.SourceNamespaces, ns) {
		return nil
	}
	return fmt.Errorf("application in namespace %s is not permitted to use project '%s' (spec.sourceNamespaces)", ns, p.Name)
}

// PermitsKind reports whether the project allows a kind: cluster-scoped
// kinds must be in clusterResourceWhitelist and not in the blacklist;
// namespaced kinds must not be in namespaceResourceBlacklist and, when a
// namespaceResourceWhitelist is set, must be in it.
func (p *AppProject) PermitsKind(group, kind string, namespaced bool) error {
	match := func(list []metav1.GroupKind) bool {
		for _, gk := range list {
			if Glob(gk.Group, group) && Glob(gk.Kind, kind) {
				return true
			}
		}
		return false
	}
	if !namespaced {
		if match(p.Spec.ClusterResourceBlacklist) {
			return fmt.Errorf("cluster-scoped resource %s is not permitted in project '%s' (spec.clusterResourceBlacklist)", groupKind(group, kind), p.Name)
		}
		if !match(p.Spec.ClusterResourceWhitelist) {
			return fmt.Errorf("cluster-scoped resource %s is not permitted in project '%s' (not in spec.clusterResourceWhitelist)", groupKind(group, kind), p.Name)
		}
		return nil
	}
	if match(p.Spec.NamespaceResourceBlacklist) {
		return fmt.Errorf("namespaced resource %s is not permitted in project '%s' (spec.namespaceResourceBlacklist)", groupKind(group, kind), p.Name)
	}
	if len(p.Spec.NamespaceResourceWhitelist) > 0 && !match(p.Spec.NamespaceResourceWhitelist) {
		return fmt.Errorf("namespaced resource %s is not permitted in project '%s' (not in spec.namespaceResourceWhitelist)", groupKind(group, kind), p.Name)
	}
	return nil
}

func groupKind(group, kind string) string {
	if group == "" {
		return kind
	}
	return group + "/" + kind
}

// NewDefaultProject is the "default" AppProject mlcd creates in the
// control-plane namespace: any repo, any destination, any kind.
func NewDefaultProject(namespace string) *AppProject {
	p := &AppProject{Spec: AppProjectSpec{
		SourceRepos:              []string{"*"},
		Destinations:             []ApplicationDestination{{Server: "*", Name: "*", Namespace: "*"}},
		ClusterResourceWhitelist: []metav1.GroupKind{anyGroupKind},
	}}
	p.APIVersion, p.Kind = GroupVersion.String(), "AppProject"
	p.Name, p.Namespace = DefaultProject, namespace
	return p
}

// Unenforced refuses a project that sets an Argo CD field mlcd does not
// enforce: keeping it silently would run apps with less restriction than
// their project's author wrote (a sync window that never closes, a
// service account never impersonated, a cluster scope never checked, a
// role never consulted). The error names the field.
func (p *AppProject) Unenforced() error {
	var fields []string
	if len(p.Spec.SyncWindows) > 0 {
		fields = append(fields, "spec.syncWindows")
	}
	if len(p.Spec.DestinationServiceAccounts) > 0 {
		fields = append(fields, "spec.destinationServiceAccounts")
	}
	if p.Spec.PermitOnlyProjectScopedClusters {
		fields = append(fields, "spec.permitOnlyProjectScopedClusters")
	}
	if len(p.Spec.Roles) > 0 {
		fields = append(fields, "spec.roles")
	}
	if len(fields) == 0 {
		return nil
	}
	return fmt.Errorf("project '%s' sets %s, which mlcd does not enforce: its applications are not synced until the field is removed (docs/security.md)", p.Name, strings.Join(fields, ", "))
}
