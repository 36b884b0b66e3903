package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
// controller until the apps synced or failed, then greps every channel a
// person or tool reads: the controller's log, the Events, and the
// Applications (status, conditions, operation state, annotations).
func TestNoSecretLeaks(t *testing.T) {
	const (
		repoPass   = "gitpass-PLANTED-1a2b"
		inlinePass = "inline-PLANTED-3c4d"
		wrongPass  = "wrong-PLANTED-5e6f"
		regToken   = "regtoken-PLANTED-7a8b"
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

	channels := map[string]string{}
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
	checked := 0
	for name, text := range channels {
		checked += len(text)
		for _, planted := range []string{repoPass, inlinePass, wrongPass, regToken} {
			if strings.Contains(text, planted) {
				i := strings.Index(text, planted)
				t.Errorf("%s shows a planted secret: …%s…", name, text[max(0, i-80):min(len(text), i+len(planted)+20)])
			}
		}
	}
	t.Logf("grepped %d channels (%d bytes) for 4 planted credentials", len(channels), checked)
}
