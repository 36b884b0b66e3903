package notify

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// apiStandIn records the calls a GitHub or GitLab API would receive.
type apiStandIn struct {
	mu    sync.Mutex
	calls []string
	auths []string
	body  map[string]string
}

func (a *apiStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, r.Method+" "+r.URL.EscapedPath())
	a.auths = append(a.auths, r.Header.Get("Authorization")+r.Header.Get("PRIVATE-TOKEN"))
	if strings.HasSuffix(r.URL.Path, "/access_tokens") {
		io.WriteString(w, `{"token": "installation-token-1"}`)
		return
	}
	data, _ := io.ReadAll(r.Body)
	a.body = map[string]string{}
	_ = json.Unmarshal(data, &a.body)
	w.WriteHeader(http.StatusCreated)
}

// TestCommitStatus: a deployed app's template with Argo CD's github.status
// sets the synced commit's status on the GitHub API (token, then GitHub
// App auth: JWT exchanged for an installation token) and on GitLab's.
func TestCommitStatus(t *testing.T) {
	api := &apiStandIn{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	cfg, err := ParseConfig(map[string]string{
		"service.github":     "token: $gh-token\nenterpriseBaseURL: " + srv.URL,
		"service.github.app": "appID: 12345\ninstallationID: 678\nprivateKey: $gh-key\nenterpriseBaseURL: " + srv.URL,
		"service.gitlab":     "token: $gl-token\nbaseURL: " + srv.URL,
		"template.on-deployed": `message: "{{.app.metadata.name}} is running {{.app.status.sync.revision}}"
github:
  status:
    state: "{{if eq .app.status.health.status \"Healthy\"}}success{{else}}pending{{end}}"
    label: "mlcd/{{index .app.metadata.annotations \"mlcd.io/model-environment\"}}"
    targetURL: "https://mlcd.example/applications/{{.app.metadata.name}}"
`,
	}, map[string][]byte{"gh-token": []byte("ghp_secret"), "gh-key": []byte(pemKey), "gl-token": []byte("glpat-secret")})
	if err != nil {
		t.Fatal(err)
	}
	app := &v1alpha1.Application{}
	app.Name, app.Namespace = "fd-staging", "argocd"
	app.Annotations = map[string]string{"mlcd.io/model-environment": "staging"}
	app.Spec.Source = &v1alpha1.ApplicationSource{RepoURL: "https://github.com/company/ml-deployments.git"}
	app.Status.Sync = v1alpha1.SyncStatus{Status: v1alpha1.SyncStatusSynced, Revision: "0123456789abcdef0123456789abcdef01234567"}
	app.Status.Health.Status = v1alpha1.HealthHealthy
	ev := Event{Trigger: OnDeployed}
	st, err := cfg.Status(app, ev)
	if err != nil || st == nil || st.State != "success" || st.Label != "mlcd/staging" || st.TargetURL != "https://mlcd.example/applications/fd-staging" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	msg, _ := cfg.Message(app, ev)
	p := Payload{Application: app.Name, Trigger: OnDeployed, Revision: app.Status.Sync.Revision, RepoURL: app.Spec.Source.RepoURL, Message: msg, Status: st}
	ctx := context.Background()

	if err := Send(ctx, cfg.Services["github"], p); err != nil {
		t.Fatal(err)
	}
	if want := "POST /repos/company/ml-deployments/statuses/" + p.Revision; api.calls[0] != want || api.auths[0] != "token ghp_secret" {
		t.Fatalf("github: %v %v", api.calls, api.auths)
	}
	if api.body["state"] != "success" || api.body["context"] != "mlcd/staging" || api.body["target_url"] != st.TargetURL || !strings.Contains(api.body["description"], "fd-staging is running") {
		t.Errorf("github body: %v", api.body)
	}

	if err := Send(ctx, cfg.Services["app"], p); err != nil {
		t.Fatal(err)
	}
	if api.calls[1] != "POST /app/installations/678/access_tokens" || !strings.HasPrefix(api.auths[1], "Bearer ey") || api.auths[2] != "token installation-token-1" {
		t.Fatalf("github app: %v %v", api.calls, api.auths)
	}

	if err := Send(ctx, cfg.Services["gitlab"], p); err != nil {
		t.Fatal(err)
	}
	if want := "POST /api/v4/projects/company%2Fml-deployments/statuses/" + p.Revision; api.calls[3] != want || api.auths[3] != "glpat-secret" || api.body["state"] != "success" || api.body["name"] != "mlcd/staging" {
		t.Fatalf("gitlab: %v %v %v", api.calls, api.auths, api.body)
	}
}
