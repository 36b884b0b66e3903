package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"strings"
)

// The providers' push events: each verified by its own signature, then
// read into a Push.

// parse verifies and decodes a push of any provider; nil for other events.
func parse(hd http.Header, body []byte, secrets map[string]string) (*Push, error) {
	unauthorized := func(what string) error {
		return &httpError{http.StatusUnauthorized, what + ": the push was not applied"}
	}
	// With any provider's secret configured, every push must be signed:
	// a provider without its own secret is refused, or an attacker would
	// dress an unsigned push in that provider's headers.
	unsigned := func(provider, key string) error {
		if secrets[key] == "" && anySecret(secrets) {
			return unauthorized(fmt.Sprintf("unsigned %s push while webhook secrets are configured (set %s in %s)", provider, key, SecretName))
		}
		return nil
	}
	switch {
	case hd.Get("X-GitHub-Event") != "":
		if err := unsigned("GitHub", "webhook.github.secret"); err != nil {
			return nil, err
		}
		if secret := secrets["webhook.github.secret"]; secret != "" && !validHMAC(sha256.New, secret, body, hd.Get("X-Hub-Signature-256"), "sha256=") {
			return nil, unauthorized("missing or wrong X-Hub-Signature-256")
		}
		if hd.Get("X-GitHub-Event") != "push" {
			return nil, nil
		}
		return parseGitHub(body)
	case hd.Get("X-Gitlab-Event") != "":
		if err := unsigned("GitLab", "webhook.gitlab.secret"); err != nil {
			return nil, err
		}
		if secret := secrets["webhook.gitlab.secret"]; secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(hd.Get("X-Gitlab-Token"))) != 1 {
			return nil, unauthorized("missing or wrong X-Gitlab-Token")
		}
		if !strings.Contains(hd.Get("X-Gitlab-Event"), "Push") && !strings.Contains(hd.Get("X-Gitlab-Event"), "Tag") {
			return nil, nil
		}
		return parseGitLab(body)
	case hd.Get("X-Event-Key") != "":
		if err := unsigned("Bitbucket Server", "webhook.bitbucketserver.secret"); err != nil {
			return nil, err
		}
		if secret := secrets["webhook.bitbucketserver.secret"]; secret != "" && !validHMAC(sha256.New, secret, body, hd.Get("X-Hub-Signature"), "sha256=") {
			return nil, unauthorized("missing or wrong X-Hub-Signature")
		}
		if hd.Get("X-Event-Key") != "repo:refs_changed" {
			return nil, nil
		}
		return parseBitbucketServer(body)
	default:
		if secret := secrets["webhook.generic.secret"]; secret != "" && !validHMAC(sha256.New, secret, body, hd.Get("X-Signature-256"), "sha256=") {
			return nil, unauthorized("missing or wrong X-Signature-256")
		}
		if err := unsigned("generic", "webhook.generic.secret"); err != nil {
			return nil, err
		}
		return parseGeneric(body)
	}
}

func anySecret(secrets map[string]string) bool {
	for _, v := range secrets {
		if v != "" {
			return true
		}
	}
	return false
}

func validHMAC(h func() hash.Hash, secret string, body []byte, header, prefix string) bool {
	got, ok := strings.CutPrefix(header, prefix)
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	mac := hmac.New(h, []byte(secret))
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

func badPayload(err error) error {
	return &httpError{http.StatusBadRequest, "invalid push payload: " + err.Error()}
}

type commitFiles struct {
	Added    []string `json:"added"`
	Modified []string `json:"modified"`
	Removed  []string `json:"removed"`
}

func changedFiles(commits []commitFiles) []string {
	if len(commits) == 0 {
		return nil
	}
	var out []string
	for _, c := range commits {
		out = append(out, c.Added...)
		out = append(out, c.Modified...)
		out = append(out, c.Removed...)
	}
	return out
}

func parseGitHub(body []byte) (*Push, error) {
	var ev struct {
		Ref        string `json:"ref"`
		Repository struct {
			HTMLURL       string `json:"html_url"`
			CloneURL      string `json:"clone_url"`
			SSHURL        string `json:"ssh_url"`
			DefaultBranch string `json:"default_branch"`
		} `json:"repository"`
		Commits []commitFiles `json:"commits"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, badPayload(err)
	}
	return &Push{URLs: []string{ev.Repository.HTMLURL, ev.Repository.CloneURL, ev.Repository.SSHURL}, Branch: refName(ev.Ref), DefaultBranch: ev.Repository.DefaultBranch, Changed: changedFiles(ev.Commits)}, nil
}

func parseGitLab(body []byte) (*Push, error) {
	var ev struct {
		Ref     string `json:"ref"`
		Project struct {
			WebURL        string `json:"web_url"`
			HTTPURL       string `json:"git_http_url"`
			SSHURL        string `json:"git_ssh_url"`
			DefaultBranch string `json:"default_branch"`
		} `json:"project"`
		Commits []commitFiles `json:"commits"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, badPayload(err)
	}
	return &Push{URLs: []string{ev.Project.WebURL, ev.Project.HTTPURL, ev.Project.SSHURL}, Branch: refName(ev.Ref), DefaultBranch: ev.Project.DefaultBranch, Changed: changedFiles(ev.Commits)}, nil
}

func parseBitbucketServer(body []byte) (*Push, error) {
	var ev struct {
		Changes []struct {
			Ref struct {
				DisplayID string `json:"displayId"`
			} `json:"ref"`
		} `json:"changes"`
		Repository struct {
			Links struct {
				Clone []struct {
					Href string `json:"href"`
				} `json:"clone"`
			} `json:"links"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, badPayload(err)
	}
	p := &Push{}
	for _, c := range ev.Repository.Links.Clone {
		p.URLs = append(p.URLs, c.Href)
	}
	if len(ev.Changes) > 0 {
		p.Branch = ev.Changes[0].Ref.DisplayID
	}
	return p, nil
}

// parseGeneric reads {"repoURL": …, "branch": …, "paths": […]}: any Git
// server that can POST JSON.
func parseGeneric(body []byte) (*Push, error) {
	var ev struct {
		RepoURL string   `json:"repoURL"`
		Branch  string   `json:"branch"`
		Paths   []string `json:"paths"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, badPayload(err)
	}
	if ev.RepoURL == "" {
		return nil, &httpError{http.StatusBadRequest, `a generic push needs {"repoURL": …, "branch": …, "paths": […]}`}
	}
	return &Push{URLs: []string{ev.RepoURL}, Branch: ev.Branch, Changed: ev.Paths}, nil
}

func refName(ref string) string {
	for _, p := range []string{"refs/heads/", "refs/tags/"} {
		if s, ok := strings.CutPrefix(ref, p); ok {
			return s
		}
	}
	return ref
}
