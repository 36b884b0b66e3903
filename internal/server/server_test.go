package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/mlcd-dev/mlcd/internal/egress"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/cli"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/metrics"
	"github.com/mlcd-dev/mlcd/internal/server"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
	"github.com/mlcd-dev/mlcd/internal/webhook"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(clustertest.Run(m))
}

const (
	adminToken    = "admin-token-0123456789abcdef"
	readonlyToken = "readonly-token-0123456789abcdef"
	teamToken     = "team-token-0123456789abcdef"
)

// env is a controller and an API server for one test namespace (the
// control-plane namespace).
type env struct {
	t   *testing.T
	ns  string
	c   client.Client
	url string
}

func start(t *testing.T) *env {
	t.Helper()
	return startWithRegistry(t, nil)
}

// startWithRegistry is start with a model registry for governed apps.
func startWithRegistry(t *testing.T, modelRegistry controller.ModelRegistry) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	return startWithMetrics(t, reg, metrics.New(reg), modelRegistry)
}

// startWithMetrics is startWithRegistry recording into rec, served from reg.
func startWithMetrics(t *testing.T, reg *prometheus.Registry, rec *metrics.Recorder, modelRegistry controller.ModelRegistry) *env {
	t.Helper()
	ce := clustertest.Get(t)
	ns := ce.Namespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	ctrl, err := controller.New(ctx, ce.Config, controller.ManagerOptions{
		Options:  controller.Options{Egress: egress.Policy{AllowLoopback: true}, PollInterval: time.Minute, ControllerNamespace: ns, Recorder: rec, Registry: modelRegistry},
		CacheDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ctrl.Start(ctx); err != nil {
			t.Errorf("controller: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	if !ctrl.Manager.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	os.WriteFile(tokens, []byte(fmt.Sprintf(`tokens:
- {name: admin, token: %s, role: admin}
- {name: viewer, token: %s, role: readonly}
- {name: team-a, token: %s, role: admin, projects: [team-a]}
`, adminToken, readonlyToken, teamToken)), 0o600)
	auth, err := server.NewAuth(tokens, ctrl.Manager.GetClient(), ns)
	if err != nil {
		t.Fatal(err)
	}
	watcher, err := client.NewWithWatch(ce.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	metrics.CollectApps(reg, ctrl.Manager.GetClient())
	srv, err := server.New(server.Options{
		Client: ctrl.Manager.GetClient(), Namespace: ns, Differ: ctrl.Reconciler, Auth: auth,
		APIReader: ctrl.Manager.GetAPIReader(), Revisions: ctrl.Reconciler, Registry: models(modelRegistry),
		Watch: func(ctx context.Context) (watch.Interface, error) {
			return watcher.Watch(ctx, &v1alpha1.ApplicationList{}, client.InNamespace(ns))
		},
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Webhook: webhook.New(webhook.Options{Client: ctrl.Manager.GetClient(), Namespace: ns}),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c, err := client.New(ce.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ns: ns, c: c, url: hs.URL}
}

const dirApp = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: %s, namespace: %s}
spec:
  project: %s
  source: {repoURL: %s, targetRevision: main, path: manifests}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy: {automated: {prune: true, selfHeal: %v}}
`

func (e *env) createApp(name, project, repo string, selfHeal bool) {
	e.t.Helper()
	app := &v1alpha1.Application{}
	if err := yaml.Unmarshal([]byte(fmt.Sprintf(dirApp, name, e.ns, project, repo, e.ns, selfHeal)), app); err != nil {
		e.t.Fatal(err)
	}
	if err := e.c.Create(context.Background(), app); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) createProject(name string) {
	e.t.Helper()
	p := &v1alpha1.AppProject{}
	yaml.Unmarshal([]byte(fmt.Sprintf("metadata: {name: %s, namespace: %s}\nspec: {sourceRepos: ['*'], destinations: [{server: '*', namespace: '*'}]}\n", name, e.ns)), p)
	if err := e.c.Create(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
}

// call makes a request and returns status and body.
func (e *env) call(method, path, token string, body io.Reader) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// mlcd runs the CLI against the server.
func (e *env) mlcd(token string, args ...string) (string, error) {
	root := cli.NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(args, "--server", e.url, "--token", token))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func repoWith(t *testing.T, cms ...string) *gittest.Repo {
	r := gittest.New(t)
	files := map[string]string{}
	for _, n := range cms {
		files["manifests/"+n+".yaml"] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {k: git}\n", n)
	}
	r.Write(files).Commit("cms")
	return r
}

func TestAuthz(t *testing.T) {
	e := start(t)
	e.createProject("team-a")
	e.createApp("shared", "default", repoWith(t, "shared-cm").URL(), true)
	e.createApp("team-app", "team-a", repoWith(t, "team-cm").URL(), true)
	// The server reads a cache: wait until it has seen both apps.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var all server.AppList
		_, body := e.call("GET", "/api/v1/applications", adminToken, nil)
		if json.Unmarshal([]byte(body), &all) == nil && all.Total == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server lists %d of 2 apps after 10 s: %s", all.Total, body[:min(len(body), 300)])
		}
	}

	if st, body := e.call("GET", "/api/v1/applications", "", nil); st != 401 || !strings.Contains(body, `"code": 401`) {
		t.Errorf("no token: %d %s", st, body)
	}
	if st, _ := e.call("GET", "/api/v1/applications", "wrong-token-0123456789", nil); st != 401 {
		t.Errorf("unknown token: %d", st)
	}
	if st, body := e.call("POST", "/api/v1/applications/shared/sync", readonlyToken, nil); st != 403 || !strings.Contains(body, "admin") {
		t.Errorf("readonly sync: %d %s", st, body)
	}
	if st, _ := e.call("GET", "/api/v1/applications/shared", readonlyToken, nil); st != 200 {
		t.Errorf("readonly get: %d", st)
	}
	big := bytes.Repeat([]byte("x"), 2<<20)
	if st, _ := e.call("POST", "/api/v1/applications/shared/sync", adminToken, bytes.NewReader(big)); st != 413 {
		t.Errorf("oversized body: %d", st)
	}
	var page server.AppList
	_, body := e.call("GET", "/api/v1/applications", teamToken, nil)
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].Name != "team-app" {
		t.Errorf("project-scoped list: %d items %v", len(page.Items), body[:min(len(body), 300)])
	}
	if st, _ := e.call("GET", "/api/v1/applications/shared", teamToken, nil); st != 404 {
		t.Errorf("project-scoped get of another project's app: %d", st)
	}
	// Pages.
	_, body = e.call("GET", "/api/v1/applications?limit=1", adminToken, nil)
	json.Unmarshal([]byte(body), &page)
	if len(page.Items) != 1 || page.Continue == "" || page.Total != 2 {
		t.Errorf("page 1: %+v", page)
	}
	_, body = e.call("GET", "/api/v1/applications?limit=1&continue="+page.Continue, adminToken, nil)
	var page2 server.AppList
	json.Unmarshal([]byte(body), &page2)
	if len(page2.Items) != 1 || page2.Continue != "" || page2.Items[0].Name != "team-app" {
		t.Errorf("page 2: %d items, continue %q", len(page2.Items), page2.Continue)
	}
}

func (e *env) cm(name string) *corev1.ConfigMap {
	c := &corev1.ConfigMap{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: name}, c); err != nil {
		return nil
	}
	return c
}

func TestCLIAgainstTheAPI(t *testing.T) {
	e := start(t)
	e.createApp("manual", "default", repoWith(t, "manual-cm").URL(), false)

	// wait: healthy within the timeout; list -o json parses.
	if out, err := e.mlcd(adminToken, "app", "wait", "manual", "--health", "--timeout", "60s"); err != nil {
		t.Fatalf("wait --health: %v\n%s", err, out)
	}
	out, err := e.mlcd(adminToken, "app", "list", "-o", "json")
	var apps []v1alpha1.Application
	if err != nil || json.Unmarshal([]byte(out), &apps) != nil || len(apps) != 1 {
		t.Fatalf("list -o json: %v\n%s", err, out)
	}
	if out, err := e.mlcd(adminToken, "app", "diff", "manual", "--exit-code"); err != nil {
		t.Fatalf("diff of a synced app: %v\n%s", err, out)
	}

	// A manual edit with selfHeal off: diff --exit-code says 1 and shows it.
	c := e.cm("manual-cm")
	before := c.DeepCopy()
	c.Data["k"] = "edited by hand"
	if err := e.c.Patch(context.Background(), c, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	out, err = e.mlcd(adminToken, "app", "diff", "manual", "--exit-code")
	var exit *cli.ExitError
	if !errorsAs(err, &exit) || exit.Code != 1 || !strings.Contains(out, "edited by hand") || !strings.Contains(out, "+  k: git") {
		t.Fatalf("diff --exit-code after an edit: %v\n%s", err, out)
	}

	// sync through the API puts Git's value back.
	if out, err := e.mlcd(adminToken, "app", "sync", "manual", "--wait", "--timeout", "60s"); err != nil {
		t.Fatalf("sync --wait: %v\n%s", err, out)
	}
	if v := e.cm("manual-cm").Data["k"]; v != "git" {
		t.Fatalf("after sync: k=%q", v)
	}
	a := &v1alpha1.Application{}
	e.c.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: "manual"}, a)
	if a.Operation != nil || a.Status.OperationState == nil || a.Status.OperationState.Operation == nil || a.Status.OperationState.Operation.InitiatedBy.Username != "admin" {
		t.Errorf("operation not recorded as run by admin: %+v %+v", a.Operation, a.Status.OperationState)
	}

	// wait times out with a reason when the app cannot get healthy.
	e.createApp("broken", "default", "http://127.0.0.1:1/none.git", true)
	out, err = e.mlcd(adminToken, "app", "wait", "broken", "--health", "--sync", "--timeout", "3s")
	if !errorsAs(err, &exit) || exit.Code != 1 || !strings.Contains(exit.Message, "timed out") || !strings.Contains(exit.Message, "ComparisonError") {
		t.Fatalf("wait timeout: %v\n%s", err, out)
	}

	// The scrape has argocd_app_info for the apps, with their statuses.
	_, body := e.call("GET", "/metrics", "", nil)
	want := fmt.Sprintf(`argocd_app_info{autosync_enabled="true",dest_namespace="%s",dest_server="https://kubernetes.default.svc",health_status="Healthy",name="manual",namespace="%s"`, e.ns, e.ns)
	if !strings.Contains(body, want) || !strings.Contains(body, `name="broken"`) || !strings.Contains(body, "argocd_app_reconcile_bucket") || !strings.Contains(body, "argocd_app_sync_total") {
		t.Fatalf("metrics lack %s:\n%s", want, grep(body, "argocd_"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDocsCurlExamples runs the curl block of docs/api.md as written.
func TestDocsCurlExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	e := start(t)
	e.createApp("docs-app", "default", repoWith(t, "docs-cm").URL(), true)
	if out, err := e.mlcd(adminToken, "app", "wait", "docs-app", "--timeout", "60s"); err != nil {
		t.Fatalf("wait: %v\n%s", err, out)
	}
	data, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(data), "## curl examples")
	_, block, _ := strings.Cut(rest, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Env = append(os.Environ(), "MLCD_SERVER="+e.url, "MLCD_TOKEN="+adminToken, "APP=docs-app")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docs/api.md curl examples: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "argocd_app_info{") || !strings.HasSuffix(strings.TrimSpace(string(out)), "401") {
		t.Fatalf("unexpected output:\n%s", out)
	}
}

// models is the registry as the model views read it (nil without one).
func models(r controller.ModelRegistry) server.ModelRegistry {
	if m, ok := r.(server.ModelRegistry); ok {
		return m
	}
	return nil
}
