package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/source"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// authRecorder serves next and records every request's Authorization header.
type authRecorder struct {
	mu    sync.Mutex
	auths []string
	paths []string
}

func (r *authRecorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auths = append(r.auths, req.Header.Get("Authorization"))
		r.paths = append(r.paths, req.URL.Path)
		r.mu.Unlock()
		next.ServeHTTP(w, req)
	})
}

func (r *authRecorder) seen() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auths...), append([]string(nil), r.paths...)
}

// A chart dependency on "http://<credential-host>@127.0.0.1:P/" is on
// 127.0.0.1, whatever its user info says: the credential template made for
// the credential host is never sent there (CVE-2021-32690's class). And a
// dependency whose repository the project does not allow is refused before
// any request reaches it.
func TestChartDependencyGetsNoForeignCredentials(t *testing.T) {
	h := start(t, time.Minute)
	charts := chartRepo(t, "0.1.0")
	rec := &authRecorder{}
	target := strings.TrimPrefix(charts, "http://")
	proxy := httptest.NewServer(rec.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get("http://" + target + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			w.Write(buf[:n])
			if err != nil {
				return
			}
		}
	})))
	t.Cleanup(proxy.Close)
	const credHost = "git.corp.example"
	const password = "s3cret-template-password"
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "corp-creds", Namespace: h.ns, Labels: map[string]string{"argocd.argoproj.io/secret-type": "repo-creds"}},
		StringData: map[string]string{"url": "http://" + credHost, "username": "corp", "password": password},
	}
	if err := h.c.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	hostile := "http://" + credHost + "@" + strings.TrimPrefix(proxy.URL, "http://")
	repo := gittest.New(t)
	sha := repo.Write(map[string]string{
		"serving/Chart.yaml":  fmt.Sprintf("apiVersion: v2\nname: serving\nversion: 1.0.0\ndependencies:\n- {name: fraud-detection, version: 0.1.0, repository: %q}\n", hostile),
		"serving/values.yaml": "fraud-detection:\n  model: {version: v2.3.1, replicas: 1}\n  autoscaling: {enabled: false}\n",
	}).Commit("dependency on a host that names the credential host as user info")
	dest := h.ns + "-dep"
	h.namespaceGone(t, dest)
	h.create(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: umbrella, namespace: {{NS}}}
spec:
  project: default
  source: {repoURL: {{REPO}}, targetRevision: main, path: serving}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`, map[string]string{"{{REPO}}": repo.URL(), "{{DEST}}": dest})
	h.waitSynced("umbrella", sha)
	auths, paths := rec.seen()
	if len(paths) == 0 {
		t.Fatal("the dependency was never fetched")
	}
	for i, a := range auths {
		if a != "" {
			t.Errorf("request %s to 127.0.0.1 carried Authorization %q", paths[i], a)
		}
	}

	// A project that allows only the app's own repository refuses the
	// dependency's before asking it anything.
	h.create(`apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: narrow, namespace: {{NS}}}
spec:
  sourceRepos: [{{REPO}}]
  destinations: [{server: "*", namespace: "*"}]
  clusterResourceWhitelist: [{group: "*", kind: "*"}]
`, map[string]string{"{{REPO}}": repo.URL()})
	before := len(paths)
	h.create(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: narrow-umbrella, namespace: {{NS}}}
spec:
  project: narrow
  source: {repoURL: {{REPO}}, targetRevision: main, path: serving}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}-n}
  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`, map[string]string{"{{REPO}}": repo.URL(), "{{DEST}}": dest})
	h.waitCondition("narrow-umbrella", v1alpha1.ConditionComparisonError, "not permitted in project")
	if _, paths := rec.seen(); len(paths) != before {
		t.Errorf("a dependency outside sourceRepos was requested: %v", paths[before:])
	}
}

// privateRemote serves repo over smart HTTP with basic auth (fetch and
// push need it), stores its repository Secret, and gives the process an
// empty HOME and no Git configuration, as in a pod: every fetch and write
// must use the Secret's credentials. It returns the URL and the password,
// and at the test's end checks that the password appears in no status,
// event or ModelRollout of the namespace.
func privateRemote(t *testing.T, h *harness, repo *gittest.Repo) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", home+"/none")
	const password = "private-remote-PLANTED-pw"
	url := repo.ServeHTTP("mlcd", password)
	if err := h.c.Create(context.Background(), controller.RepositorySecret(h.ns, url, source.Credentials{Username: "mlcd", Password: password})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		var apps v1alpha1.ApplicationList
		var events corev1.EventList
		var rollouts v1alpha1.ModelRolloutList
		_ = h.c.List(ctx, &apps, client.InNamespace(h.ns))
		_ = h.c.List(ctx, &events, client.InNamespace(h.ns))
		_ = h.c.List(ctx, &rollouts, client.InNamespace(h.ns))
		for name, v := range map[string]any{"applications": apps.Items, "events": events.Items, "model rollouts": rollouts.Items} {
			if s := fmt.Sprintf("%+v", v); strings.Contains(s, password) {
				t.Errorf("the repository password appears in %s", name)
			}
		}
	})
	return url
}
