package notify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// CommitStatus is a template's `github.status` (Argo CD's shape; GitLab's
// services read the same): the state, label and link a commit status
// gets. Each field is a Go template over {app, event}.
type CommitStatus struct {
	State     string `json:"state"`
	Label     string `json:"label"`
	TargetURL string `json:"targetURL"`
}

// commitStatusService reads `service.github` (Argo CD's keys: appID,
// installationID, privateKey, enterpriseBaseURL; or mlcd's token) and
// `service.gitlab` (token, baseURL).
func commitStatusService(kind, name, v string, resolve func(string) string) (Service, error) {
	var s struct {
		AppID             any    `json:"appID"`
		InstallationID    any    `json:"installationID"`
		PrivateKey        string `json:"privateKey"`
		Token             string `json:"token"`
		EnterpriseBaseURL string `json:"enterpriseBaseURL"`
		BaseURL           string `json:"baseURL"`
	}
	if err := yaml.Unmarshal([]byte(v), &s); err != nil {
		return Service{}, err
	}
	svc := Service{Name: name, Kind: kind, Token: resolve(s.Token), PrivateKey: resolve(s.PrivateKey),
		AppID: resolve(fmt.Sprint(orEmpty(s.AppID))), InstallationID: resolve(fmt.Sprint(orEmpty(s.InstallationID)))}
	switch kind {
	case "github":
		svc.URL = strings.TrimSuffix(resolve(s.EnterpriseBaseURL), "/")
		if svc.URL == "" {
			svc.URL = "https://api.github.com"
		}
		if svc.Token == "" && (svc.AppID == "" || svc.InstallationID == "" || svc.PrivateKey == "") {
			return Service{}, errors.New("needs token, or appID, installationID and privateKey")
		}
	case "gitlab":
		svc.URL = strings.TrimSuffix(resolve(s.BaseURL), "/")
		if svc.URL == "" {
			svc.URL = "https://gitlab.com"
		}
		if svc.Token == "" {
			return Service{}, errors.New("needs token")
		}
	}
	return svc, nil
}

func orEmpty(v any) any {
	if v == nil {
		return ""
	}
	return v
}

// Status renders the trigger's commit status, nil when its template sets
// none.
func (c *Config) Status(app *v1alpha1.Application, ev Event) (*CommitStatus, error) {
	st, ok := c.Statuses[ev.Trigger]
	if !ok {
		return nil, nil
	}
	data := templateData(app, ev)
	out := &CommitStatus{}
	for _, f := range []struct {
		in  string
		out *string
	}{{st.State, &out.State}, {st.Label, &out.Label}, {st.TargetURL, &out.TargetURL}} {
		t, err := template.New(ev.Trigger).Parse(f.in)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, err
		}
		*f.out = strings.TrimSpace(b.String())
	}
	return out, nil
}

// sendStatus sets the commit status of p's revision in p's repository.
func sendStatus(ctx context.Context, svc Service, p Payload) error {
	if p.Status == nil {
		return fmt.Errorf("service %s: the template of %s sets no github.status", svc.Name, p.Trigger)
	}
	r, ok := source.ParseRepoURL(p.RepoURL)
	if !ok || len(r.Path) < 2 || p.Revision == "" {
		return fmt.Errorf("service %s: no repository path or revision to set a status on (%s)", svc.Name, source.RedactURL(p.RepoURL))
	}
	var req *http.Request
	var err error
	switch svc.Kind {
	case "github":
		owner, repo := r.Path[len(r.Path)-2], r.Path[len(r.Path)-1]
		body, _ := json.Marshal(map[string]string{"state": p.Status.State, "context": p.Status.Label, "target_url": p.Status.TargetURL, "description": truncate(p.Message, 140)})
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/repos/%s/%s/statuses/%s", svc.URL, url.PathEscape(owner), url.PathEscape(repo), p.Revision), bytes.NewReader(body))
		if err != nil {
			return err
		}
		token := svc.Token
		if token == "" {
			if token, err = installationToken(ctx, svc); err != nil {
				return err
			}
		}
		req.Header.Set("Authorization", "token "+token)
		req.Header.Set("Accept", "application/vnd.github+json")
	case "gitlab":
		project := url.PathEscape(strings.Join(r.Path, "/"))
		body, _ := json.Marshal(map[string]string{"state": gitlabState(p.Status.State), "name": p.Status.Label, "target_url": p.Status.TargetURL, "description": truncate(p.Message, 255)})
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/api/v4/projects/%s/statuses/%s", svc.URL, project, p.Revision), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("PRIVATE-TOKEN", svc.Token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("service %s: %s", svc.Name, redact(err.Error(), svc))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("service %s answered HTTP %d", svc.Name, resp.StatusCode)
	}
	return nil
}

// gitlabState maps GitHub's states to GitLab's.
func gitlabState(s string) string {
	switch s {
	case "error", "failure":
		return "failed"
	}
	return s // pending, success (and GitLab's running, canceled)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// installationToken exchanges a GitHub App's JWT for an installation
// token (GitHub's POST /app/installations/{id}/access_tokens).
func installationToken(ctx context.Context, svc Service) (string, error) {
	jwt, err := appJWT(svc.AppID, svc.PrivateKey, time.Now())
	if err != nil {
		return "", fmt.Errorf("service %s: %w", svc.Name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/app/installations/%s/access_tokens", svc.URL, url.PathEscape(svc.InstallationID)), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+jwt)
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("service %s: %s", svc.Name, redact(err.Error(), svc))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return "", fmt.Errorf("service %s: installation token: HTTP %d", svc.Name, resp.StatusCode)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || out.Token == "" {
		return "", fmt.Errorf("service %s: installation token: no token in the answer", svc.Name)
	}
	return out.Token, nil
}

// appJWT is a GitHub App's RS256 JWT (iss: the app id; valid 9 minutes,
// issued a minute early against clock drift).
func appJWT(appID, privateKey string, now time.Time) (string, error) {
	block, _ := pem.Decode([]byte(privateKey))
	if block == nil {
		return "", errors.New("privateKey is not PEM")
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		key = k
	} else if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return "", errors.New("privateKey is not an RSA key")
		}
		key = rk
	} else {
		return "", errors.New("privateKey: not a PKCS#1 or PKCS#8 RSA key")
	}
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(9 * time.Minute).Unix(), "iss": appID})
	signing := header + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + enc.EncodeToString(sig), nil
}
