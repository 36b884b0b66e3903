package controller_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/notify"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestNotificationOnSyncFailedOnceAcrossRestart: a failed sync sends one
// signed webhook to the subscribed service, and a controller restart does
// not send it again.
func TestNotificationOnSyncFailedOnceAcrossRestart(t *testing.T) {
	var mu sync.Mutex
	var got []notify.Payload
	var badSig int
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte("hook-secret"))
		mac.Write(body)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("X-Mlcd-Signature-256") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			badSig++
			w.WriteHeader(401)
			return
		}
		var p notify.Payload
		json.Unmarshal(body, &p)
		got = append(got, p)
	}))
	defer hook.Close()

	env := clustertest.Get(t)
	h := start(t, time.Minute) // the namespace and client; its controller is stopped below
	ctx := context.Background()
	h.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: notify.SecretName, Namespace: h.ns}, StringData: map[string]string{"hook-secret": "hook-secret"}})
	h.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: notify.ConfigMapName, Namespace: h.ns}, Data: map[string]string{
		"service.webhook.ops": "url: " + hook.URL + "\nsecret: $hook-secret\n",
	}})
	repo := gittest.New(t)
	// The API server refuses a number as ConfigMap data: the sync fails.
	repo.Write(map[string]string{"manifests/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {k: 1}\n"}).Commit("bad data")
	doc := strings.Replace(dirApp, "metadata: {name: {{NAME}}, namespace: {{NS}}}", "metadata: {name: {{NAME}}, namespace: {{NS}}, annotations: {notifications.argoproj.io/subscribe.on-sync-failed.ops: oncall}}", 1)
	h.create(doc, map[string]string{"{{NAME}}": "failing", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.eventually(30*time.Second, "one notification", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1, ""
	})
	mu.Lock()
	p := got[0]
	mu.Unlock()
	if p.Trigger != notify.OnSyncFailed || p.Application != "failing" || len(p.Recipients) != 1 || p.Recipients[0] != "oncall" || !strings.Contains(p.Message, "failed") {
		t.Errorf("payload %+v", p)
	}

	// A second controller on the same namespace (a restart): nothing new.
	ctx2, cancel := context.WithCancel(context.Background())
	c2, err := controller.New(ctx2, env.Config, controller.ManagerOptions{Options: controller.Options{PollInterval: time.Minute, ControllerNamespace: h.ns}, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c2.Start(ctx2) }()
	time.Sleep(5 * time.Second)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || badSig != 0 {
		t.Fatalf("%d notifications (%d badly signed), want exactly 1", len(got), badSig)
	}
}

// TestCommitStatusOnDeployed: an app subscribed to on-deployed with a
// github service gets its synced commit's status set on the GitHub API (a
// recording stand-in) with the template's state and label, once.
func TestCommitStatusOnDeployed(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	var bodies []map[string]string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b map[string]string
		json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		calls = append(calls, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		bodies = append(bodies, b)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer api.Close()
	h := start(t, time.Minute)
	ctx := context.Background()
	h.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: notify.SecretName, Namespace: h.ns}, StringData: map[string]string{"github-token": "ghp_recorded"}})
	h.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: notify.ConfigMapName, Namespace: h.ns}, Data: map[string]string{
		"service.github": "token: $github-token\nenterpriseBaseURL: " + api.URL + "\n",
		"template.on-deployed": `message: "{{.app.metadata.name}} deployed"
github:
  status:
    state: success
    label: "mlcd/{{.app.metadata.name}}: deployed healthy"
    targetURL: "https://mlcd.example/applications/{{.app.metadata.name}}"
`,
	}})
	repo := gittest.New(t)
	sha := repo.Write(map[string]string{"manifests/cm.yaml": cm("status-cm")}).Commit("one ConfigMap")
	doc := strings.Replace(dirApp, "metadata: {name: {{NAME}}, namespace: {{NS}}}", "metadata: {name: {{NAME}}, namespace: {{NS}}, annotations: {notifications.argoproj.io/subscribe.on-deployed.github: \"\"}}", 1)
	h.create(doc, map[string]string{"{{NAME}}": "staging", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitSynced("staging", sha)
	h.eventually(30*time.Second, "one commit status", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) == 1, strings.Join(calls, "; ")
	})
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || !strings.HasSuffix(strings.Fields(calls[0])[1], "/statuses/"+sha) || !strings.HasSuffix(calls[0], "token ghp_recorded") {
		t.Fatalf("calls: %v", calls)
	}
	if b := bodies[0]; b["state"] != "success" || b["context"] != "mlcd/staging: deployed healthy" || b["target_url"] != "https://mlcd.example/applications/staging" {
		t.Errorf("status body: %v", b)
	}
}
