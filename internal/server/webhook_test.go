package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/server"
	"github.com/mlcd-dev/mlcd/internal/webhook"
)

// TestGitHubPushRefreshesMatchingApps: a signed push refreshes exactly the
// apps of that repository and branch whose manifest-generate-paths match;
// an unsigned one, or one over the size cap, changes nothing.
func TestGitHubPushRefreshesMatchingApps(t *testing.T) {
	apps := map[string]string{
		"fraud":   `{metadata: {name: fraud, annotations: {argocd.argoproj.io/manifest-generate-paths: "."}}, spec: {project: default, destination: {namespace: x}, source: {repoURL: "https://github.com/company/ml-deployments.git", targetRevision: main, path: models/fraud-detection}}}`,
		"rec":     `{metadata: {name: rec, annotations: {argocd.argoproj.io/manifest-generate-paths: "."}}, spec: {project: default, destination: {namespace: x}, source: {repoURL: "https://github.com/company/ml-deployments.git", targetRevision: main, path: models/recommendation}}}`,
		"all":     `{metadata: {name: all}, spec: {project: default, destination: {namespace: x}, source: {repoURL: "git@github.com:company/ml-deployments.git", targetRevision: HEAD, path: argocd}}}`,
		"release": `{metadata: {name: release}, spec: {project: default, destination: {namespace: x}, source: {repoURL: "https://github.com/company/ml-deployments.git", targetRevision: release, path: models/fraud-detection}}}`,
		"other":   `{metadata: {name: other}, spec: {project: default, destination: {namespace: x}, source: {repoURL: "https://github.com/company/other.git", targetRevision: main, path: models/fraud-detection}}}`,
	}
	w := newWebhookWorld(t, "push-secret", apps)
	hs := w.hs
	push := []byte(`{"ref":"refs/heads/main","repository":{"html_url":"https://github.com/company/ml-deployments","clone_url":"https://github.com/company/ml-deployments.git","ssh_url":"git@github.com:company/ml-deployments.git","default_branch":"main"},"commits":[{"modified":["models/fraud-detection/values-production.yaml"]}]}`)
	post := func(body []byte, signature string) int {
		req, _ := http.NewRequest("POST", hs.URL+"/api/webhook", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		if signature != "" {
			req.Header.Set("X-Hub-Signature-256", signature)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	refreshed := w.refreshed
	mac := hmac.New(sha256.New, []byte("push-secret"))
	mac.Write(push)
	good := "sha256=" + hex.EncodeToString(mac.Sum(nil))

	if st := post(push, ""); st != 401 {
		t.Errorf("unsigned push: %d", st)
	}
	if st := post(push, "sha256=00"); st != 401 {
		t.Errorf("wrongly signed push: %d", st)
	}
	// Only GitHub's secret is set: a push dressed as another provider's
	// is unsigned, and refused too.
	gitlab := []byte(`{"object_kind":"push","ref":"refs/heads/main","project":{"web_url":"https://github.com/company/ml-deployments","git_http_url":"https://github.com/company/ml-deployments.git","default_branch":"main"},"commits":[{"modified":["models/fraud-detection/values-production.yaml"]}]}`)
	for name, hdr := range map[string][2]string{"GitLab": {"X-Gitlab-Event", "Push Hook"}, "Bitbucket Server": {"X-Event-Key", "repo:refs_changed"}, "generic": {"X-Unrelated", "1"}} {
		req, _ := http.NewRequest("POST", hs.URL+"/api/webhook", bytes.NewReader(gitlab))
		req.Header.Set(hdr[0], hdr[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), "unsigned") {
			t.Errorf("unsigned %s push while only GitHub's secret is set: %d %s", name, resp.StatusCode, body)
		}
	}
	if got := refreshed(); len(got) != 0 {
		t.Fatalf("a refused push refreshed %v", got)
	}
	if st := post(bytes.Repeat([]byte(" "), 2<<20), good); st != 413 {
		t.Errorf("oversized push: %d", st)
	}
	// A 50 MiB body streamed without a length (the payload denial of
	// service of Argo CD's advisories): refused after the cap, the rest
	// never read.
	sent := &countingReader{r: io.LimitReader(zeros{}, 50<<20)}
	started := time.Now()
	req, _ := http.NewRequest("POST", hs.URL+"/api/webhook", sent)
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", good)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		if resp.StatusCode != 413 {
			t.Errorf("50 MiB push: %d", resp.StatusCode)
		}
		resp.Body.Close()
	} // else the server closed the connection mid-body: refused too
	if n := sent.n.Load(); n > 8<<20 {
		t.Errorf("the server read %d MiB of a 50 MiB push; the cap is 1 MiB", n>>20)
	}
	if took := time.Since(started); took > 5*time.Second {
		t.Errorf("refusing a 50 MiB push took %s", took)
	}
	if got := refreshed(); len(got) != 0 {
		t.Fatalf("an oversized push refreshed %v", got)
	}
	req, _ = http.NewRequest("POST", hs.URL+"/api/webhook", bytes.NewReader(push))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", good)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("signed push: %d %s", resp.StatusCode, answer)
	}
	// The sender learns a count, not the fleet's app names.
	if strings.Contains(string(answer), "fraud") || !strings.Contains(string(answer), `"refreshed":2`) {
		t.Errorf("answer %s: want a count and no app name", answer)
	}
	if got, want := refreshed(), map[string]bool{"fraud": true, "all": true}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("refreshed %v, want %v", got, want)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// countingReader counts what the client managed to send.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestPushOutsideEveryAppsPathsFetches: a push whose files no app's
// manifest-generate-paths cover (here the shared chart under base/) still
// refreshes one app of that repository and branch, so the controller
// fetches it and wakes the apps whose renders read those files; an app of
// another repository is left alone.
func TestPushOutsideEveryAppsPathsFetches(t *testing.T) {
	w := newWebhookWorld(t, "", map[string]string{
		"fraud": `{metadata: {name: fraud, annotations: {argocd.argoproj.io/manifest-generate-paths: "."}}, spec: {project: default, destination: {namespace: x}, source: {repoURL: "https://github.com/company/ml-deployments.git", targetRevision: main, path: models/fraud-detection}}}`,
		"rec":   `{metadata: {name: rec, annotations: {argocd.argoproj.io/manifest-generate-paths: "."}}, spec: {project: default, destination: {namespace: x}, source: {repoURL: "https://github.com/company/ml-deployments.git", targetRevision: main, path: models/recommendation}}}`,
		"other": `{metadata: {name: other, annotations: {argocd.argoproj.io/manifest-generate-paths: "."}}, spec: {project: default, destination: {namespace: x}, source: {repoURL: "https://github.com/company/other.git", targetRevision: main, path: models/fraud-detection}}}`,
	})
	push := []byte(`{"ref":"refs/heads/main","repository":{"html_url":"https://github.com/company/ml-deployments","clone_url":"https://github.com/company/ml-deployments.git","default_branch":"main"},"commits":[{"modified":["base/model-server/templates/_service.tpl"]}]}`)
	req, _ := http.NewRequest("POST", w.hs.URL+"/api/webhook", bytes.NewReader(push))
	req.Header.Set("X-GitHub-Event", "push")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res webhook.Answer
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("push: %d, %v", resp.StatusCode, err)
	}
	var refreshed []string
	for name := range w.refreshed() {
		refreshed = append(refreshed, name)
	}
	if len(refreshed) != 1 || refreshed[0] == "other" {
		t.Fatalf("refreshed %v, want one of fraud and rec", refreshed)
	}
	if !res.Fetch || res.Refreshed != 1 {
		t.Errorf("the answer %+v, want one app refreshed to fetch", res)
	}
}

// webhookWorld is an API server behind a webhook handler over apps (YAML
// by name) in a test namespace; secret, when set, is GitHub's.
type webhookWorld struct {
	t    *testing.T
	c    client.Client
	ns   string
	hs   *httptest.Server
	apps map[string]string
}

func newWebhookWorld(t *testing.T, secret string, apps map[string]string) *webhookWorld {
	t.Helper()
	ce := clustertest.Get(t)
	ns := ce.Namespace(t)
	c, err := client.New(ce.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := controller.InstallCRDs(ctx, c); err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: webhook.SecretName, Namespace: ns}, StringData: map[string]string{"webhook.github.secret": secret}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, doc := range apps {
		a := &v1alpha1.Application{}
		if err := yaml.Unmarshal([]byte(doc), a); err != nil {
			t.Fatal(err)
		}
		a.Namespace = ns
		if err := c.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := server.New(server.Options{Client: c, Namespace: ns, InsecureNoAuth: true, Webhook: webhook.New(webhook.Options{Client: c, Namespace: ns})})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &webhookWorld{t: t, c: c, ns: ns, hs: hs, apps: apps}
}

// refreshed is the set of apps that carry the refresh annotation.
func (w *webhookWorld) refreshed() map[string]bool {
	w.t.Helper()
	out := map[string]bool{}
	for name := range w.apps {
		a := &v1alpha1.Application{}
		if err := w.c.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: name}, a); err != nil {
			w.t.Fatal(err)
		}
		if _, ok := a.Annotations[v1alpha1.RefreshAnnotation]; ok {
			out[name] = true
		}
	}
	return out
}
