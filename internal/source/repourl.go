package source

import (
	"net/url"
	"strings"
)

// RepoURL is a repository URL taken apart: the one reading of a
// repository's identity (webhooks, the poll's wake-up, credentials).
// scp-like "git@host:org/repo" reads as ssh.
type RepoURL struct {
	Scheme string // lower case: https, http, ssh, git, file, oci
	Host   string // lower case, no user info, no port
	Port   string // explicit or the scheme's default
	Path   []string
}

var defaultPorts = map[string]string{"https": "443", "http": "80", "ssh": "22", "git": "9418", "oci": "443"}

// ParseRepoURL reads u. ok is false for what is no URL of a remote
// repository (a local path is a file URL).
func ParseRepoURL(u string) (RepoURL, bool) {
	u = strings.TrimSpace(u)
	if !strings.Contains(u, "://") {
		// scp-like: [user@]host:path (not a Windows drive, not a path).
		at := strings.Index(u, "@")
		colon := strings.Index(u, ":")
		if colon > 0 && at < colon && !strings.Contains(u[:colon], "/") {
			return RepoURL{Scheme: "ssh", Host: strings.ToLower(u[at+1 : colon]), Port: "22", Path: segments(u[colon+1:])}, true
		}
		if strings.HasPrefix(u, "/") {
			return RepoURL{Scheme: "file", Path: segments(u)}, true
		}
		return RepoURL{}, false
	}
	p, err := url.Parse(u)
	if err != nil {
		return RepoURL{}, false
	}
	r := RepoURL{Scheme: strings.ToLower(p.Scheme), Host: strings.ToLower(p.Hostname()), Port: p.Port(), Path: segments(p.Path)}
	if r.Port == "" {
		r.Port = defaultPorts[r.Scheme]
	}
	return r, true
}

func segments(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	if n := len(out); n > 0 {
		out[n-1] = strings.TrimSuffix(out[n-1], ".git")
		if out[n-1] == "" {
			out = out[:n-1]
		}
	}
	return out
}

// RepoIdentity makes repository URLs comparable whatever their scheme,
// user, ".git" suffix, trailing slash, case or default port: "host/org/repo"
// (a push's https URL and an app's ssh URL name the same repository).
func RepoIdentity(u string) string {
	r, ok := ParseRepoURL(u)
	if !ok {
		return strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(u), "/"), ".git"))
	}
	host := r.Host
	if r.Port != "" && r.Port != defaultPorts[r.Scheme] && !(r.Scheme == "ssh" && r.Port == "22") {
		host += ":" + r.Port
	}
	return strings.ToLower(strings.Join(append([]string{host}, r.Path...), "/"))
}

// SameRepo reports whether a and b name one repository for credentials:
// same scheme, host and port, and the same path.
func SameRepo(a, b string) bool {
	ra, ok1 := ParseRepoURL(a)
	rb, ok2 := ParseRepoURL(b)
	return ok1 && ok2 && sameEndpoint(ra, rb) && len(ra.Path) == len(rb.Path) && pathPrefix(ra.Path, rb.Path)
}

// CredentialsCover reports whether a credential template made for prefix
// (Argo CD's repo-creds url) serves repo: the parsed URLs must agree on
// scheme, host (user info never counts: "https://git.corp@evil/" is evil's)
// and port, and prefix's path must be whole leading segments of repo's
// ("org" covers "org/app", not "org-evil/app").
func CredentialsCover(prefix, repo string) bool {
	rp, ok1 := ParseRepoURL(prefix)
	rr, ok2 := ParseRepoURL(repo)
	return ok1 && ok2 && sameEndpoint(rp, rr) && len(rp.Path) <= len(rr.Path) && pathPrefix(rp.Path, rr.Path)
}

func sameEndpoint(a, b RepoURL) bool {
	return a.Scheme == b.Scheme && a.Host == b.Host && a.Port == b.Port
}

func pathPrefix(prefix, p []string) bool {
	for i, s := range prefix {
		if !strings.EqualFold(s, p[i]) {
			return false
		}
	}
	return true
}

// SameHost reports whether two URLs are on one scheme, host and port: a
// chart's download URL gets the repository's credentials only then
// (Argo CD's helm.passCredentials: false).
func SameHost(a, b string) bool {
	ra, ok1 := ParseRepoURL(a)
	rb, ok2 := ParseRepoURL(b)
	return ok1 && ok2 && sameEndpoint(ra, rb)
}
