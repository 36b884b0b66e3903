package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
)

// TestNoSecretLeaks plants credentials — a repository password in a
// repository Secret, a password written into a repoURL, a wrong password
// that makes fetches fail, the registry's bearer token — runs the real
// controller until the apps synced or failed, then runs `mlcd server`
// with a planted API token and webhook secret, and greps every channel a
// person or tool reads: the controller's and the server's logs, the
// Events, the Applications (status, conditions, operation state,
// annotations), every API read route, the live stream, a refused webhook's
// answer, a rollback's answer, the ModelRollouts, the registry's answers
// and the web UI.
func TestNoSecretLeaks(t *testing.T) {
	const (
		repoPass   = "gitpass-PLANTED-1a2b"
		inlinePass = "inline-PLANTED-3c4d"
		wrongPass  = "wrong-PLANTED-5e6f"
		regToken   = "regtoken-PLANTED-7a8b"
		apiToken   = "apitoken-PLANTED-9c0d"
		hookSecret = "hooksecret-PLANTED-e1f2"
	)
	w := newWorld(t, 1)
	// The repository now wants basic auth (user git, repoPass or inlinePass).
	auth := httptest.NewServer(w.git.wrap(w.repo.Handler("git", repoPass)))
	t.Cleanup(auth.Close)
	inline := httptest.NewServer(w.repo.Handler("git", inlinePass))
	t.Cleanup(inline.Close)
	wrong := httptest.NewServer(w.repo.Handler("git", "the-right-one"))
	t.Cleanup(wrong.Close)
	ctx := context.Background()
	secret := func(name, url, pass string) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns, Labels: map[string]string{"argocd.argoproj.io/secret-type": "repository"}},
			StringData: map[string]string{"url": url, "username": "git", "password": pass}}
		if err := w.c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	secret("authed", auth.URL+w.repo.HTTPPath(), repoPass)
	secret("wrong", wrong.URL+w.repo.HTTPPath(), wrongPass)
	for _, name := range []string{"authed", "inline", "wrong"} {
		w.repo.Write(map[string]string{"leak/" + name + "/cm.yaml": fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leak-%s}\ndata: {k: v}\n", name)})
	}
	w.repo.Commit("one path per app")
	app := func(name, repoURL string) {
		a := &v1alpha1.Application{}
		yaml.Unmarshal([]byte(fmt.Sprintf("spec: {project: default, source: {repoURL: %q, targetRevision: main, path: leak/%s}, destination: {server: https://kubernetes.default.svc, namespace: %s}, syncPolicy: {automated: {prune: true}}}", repoURL, name, w.ns)), a)
		a.Name, a.Namespace = name, w.ns
		if err := w.c.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	app("authed", auth.URL+w.repo.HTTPPath())
	app("inline", strings.Replace(inline.URL, "http://", "http://git:"+inlinePass+"@", 1)+w.repo.HTTPPath())
	app("wrong", wrong.URL+w.repo.HTTPPath())
	w.extraApps = 3

	reg := registrytest.Start(t, registry.ServerOptions{AuthToken: regToken})
	t.Setenv("MLFLOW_TRACKING_TOKEN", regToken)
	w.registry = reg.URL
	w.start()
	deadline := time.Now().Add(60 * time.Second)
	for {
		a, b, c := w.namedApp("authed"), w.namedApp("inline"), w.namedApp("wrong")
		if a.Status.Sync.Status == v1alpha1.SyncStatusSynced && b.Status.Sync.Status == v1alpha1.SyncStatusSynced && len(c.Status.Conditions) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("apps did not settle: authed %s, inline %s %v, wrong %v", a.Status.Sync.Status, b.Status.Sync.Status, b.Status.Conditions, c.Status.Conditions)
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(4 * time.Second) // a poll more of logs and events
	w.kill()

	// The API server and the UI, with a planted API token and webhook
	// secret: every read route, a refused webhook, the live stream.
	if err := w.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "argocd-secret", Namespace: w.ns}, StringData: map[string]string{"webhook.github.secret": hookSecret}}); err != nil {
		t.Fatal(err)
	}
	served := w.serveAPI(apiToken, reg.URL)

	channels := served
	logs, _ := os.ReadFile(filepath.Join(w.dir, "controller.log"))
	channels["controller log"] = string(logs)
	var events corev1.EventList
	w.c.List(ctx, &events, client.InNamespace(w.ns))
	ev, _ := json.Marshal(events.Items)
	channels["events"] = string(ev)
	var apps v1alpha1.ApplicationList
	w.c.List(ctx, &apps, client.InNamespace(w.ns))
	for _, a := range apps.Items {
		st, _ := json.Marshal(a.Status)
		ann, _ := json.Marshal(a.Annotations)
		channels["app "+a.Name+" status"] = string(st)
		channels["app "+a.Name+" annotations"] = string(ann)
	}
	// ModelRollouts (their analysis measurements) and what the registry
	// answers a reader.
	var rollouts v1alpha1.ModelRolloutList
	w.c.List(ctx, &rollouts, client.InNamespace(w.ns))
	mr, _ := json.Marshal(rollouts.Items)
	channels["model rollouts"] = string(mr)
	for _, p := range []string{"/api/2.0/mlflow/registered-models/search", "/api/2.0/mlflow/model-versions/search"} {
		req, _ := http.NewRequest("GET", reg.URL+p, nil)
		req.Header.Set("Authorization", "Bearer "+regToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			channels["registry "+p] = string(b)
		}
	}
	checked := 0
	for name, text := range channels {
		checked += len(text)
		for _, planted := range []string{repoPass, inlinePass, wrongPass, regToken, apiToken, hookSecret} {
			if strings.Contains(text, planted) {
				i := strings.Index(text, planted)
				t.Errorf("%s shows a planted secret: …%s…", name, text[max(0, i-80):min(len(text), i+len(planted)+20)])
			}
		}
	}
	t.Logf("grepped %d channels (%d bytes) for 6 planted credentials", len(channels), checked)
}

// serveAPI runs `mlcd server` on a free loopback port with token as its
// one admin token and returns what each read route, the live stream, a
// wrongly signed webhook and the UI answered, and the server's log.
func (w *world) serveAPI(token, registryURL string) map[string]string {
	w.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tokens := filepath.Join(w.dir, "tokens.yaml")
	os.WriteFile(tokens, []byte(fmt.Sprintf("tokens: [{name: ci, token: %q, role: admin}]\n", token)), 0o600)
	logPath := filepath.Join(w.dir, "server.log")
	f, err := os.Create(logPath)
	if err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command(mlcdBin, "server", "--kubeconfig", w.env.Kubeconfig, "--namespace", w.ns, "--listen", addr, "--tokens-file", tokens,
		"--registry", registryURL, "--cache-dir", filepath.Join(w.dir, "server-cache"), "--poll-interval", "3s")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); f.Close() }()
	base := "http://" + addr
	get := func(method, path, body string, header map[string]string, timeout time.Duration) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body) // the stream ends at the timeout
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, _ := get("GET", "/healthz", "", nil, time.Second); st == 200 {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(logPath)
			w.t.Fatalf("mlcd server did not answer on %s: %s", addr, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := map[string]string{}
	paths := []string{"/api/v1/session", "/api/v1/applications", "/api/v1/applicationsets", "/api/v1/models", "/", "/metrics"}
	for _, name := range []string{"authed", "inline", "wrong"} {
		for _, sub := range []string{"", "/diff", "/events", "/lineage", "/rollout"} {
			paths = append(paths, "/api/v1/applications/"+name+sub)
		}
	}
	for _, p := range paths {
		st, body := get("GET", p, "", nil, 10*time.Second)
		if st == 0 || st >= 500 {
			w.t.Errorf("GET %s: %d %s", p, st, body)
		}
		out["GET "+p] = body
	}
	_, out["stream"] = get("GET", "/api/v1/stream/applications", "", nil, 2*time.Second)
	st, body := get("POST", "/api/webhook", `{"ref":"refs/heads/main"}`, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00"}, 10*time.Second)
	if st != 401 {
		w.t.Errorf("wrongly signed webhook: %d %s", st, body)
	}
	out["webhook answer"] = body
	// A rollback pushes with the repository Secret's credentials: its
	// answer (pushed or refused) names none of them.
	_, out["rollback answer"] = get("POST", "/api/v1/applications/authed/rollback", `{"reason": "sweep"}`, map[string]string{"Content-Type": "application/json"}, 30*time.Second)
	logs, _ := os.ReadFile(logPath)
	out["server log"] = string(logs)
	return out
}
