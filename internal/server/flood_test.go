package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
	"github.com/mlcd-dev/mlcd/internal/webhook"
)

// TestWebhookFlood: 1,000 signed pushes in 10 s refresh the matching app
// at most once per second, every push is answered, and meanwhile another
// app's push is synced within seconds (reconciles are not blocked).
func TestWebhookFlood(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if err := e.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: webhook.SecretName, Namespace: e.ns}, StringData: map[string]string{"webhook.github.secret": "flood-secret"}}); err != nil {
		t.Fatal(err)
	}
	flooded, quiet := gittest.New(t), gittest.New(t)
	flooded.Write(map[string]string{"manifests/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flooded}\ndata: {k: v}\n"}).Commit("one")
	quiet.Write(map[string]string{"manifests/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: quiet}\ndata: {k: v}\n"}).Commit("one")
	floodedURL, quietURL := flooded.ServeHTTP("", ""), quiet.ServeHTTP("", "")
	e.createApp("flooded", "default", floodedURL, true)
	e.createApp("quiet", "default", quietURL, true)
	for _, name := range []string{"flooded", "quiet"} {
		if out, err := e.mlcd(adminToken, "app", "wait", name, "--sync", "--health", "--timeout", "60s"); err != nil {
			t.Fatalf("wait %s: %v\n%s", name, err, out)
		}
	}

	// Count the refresh requests the flooded app receives.
	wc, err := client.NewWithWatch(clustertest.Get(t).Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	wi, err := wc.Watch(ctx, &v1alpha1.ApplicationList{}, client.InNamespace(e.ns))
	if err != nil {
		t.Fatal(err)
	}
	defer wi.Stop()
	var refreshes atomic.Int64
	go func() {
		had := false
		for ev := range wi.ResultChan() {
			a, ok := ev.Object.(*v1alpha1.Application)
			if !ok || ev.Type != watch.Modified || a.Name != "flooded" {
				continue
			}
			_, has := a.Annotations[v1alpha1.RefreshAnnotation]
			if has && !had {
				refreshes.Add(1)
			}
			had = has
		}
	}()

	push := func(repoURL string) []byte {
		return []byte(fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"html_url":%q,"clone_url":%q,"default_branch":"main"},"commits":[{"modified":["manifests/a.yaml"]}]}`, repoURL, repoURL))
	}
	send := func(body []byte) int {
		mac := hmac.New(sha256.New, []byte("flood-secret"))
		mac.Write(body)
		req, _ := http.NewRequest("POST", e.url+"/api/webhook", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	started := time.Now()
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := push(floodedURL)
			for i := range 250 {
				// 1,000 pushes paced over 10 s.
				time.Sleep(time.Until(started.Add(time.Duration(i*4+w) * 10 * time.Millisecond)))
				if code := send(body); code != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	// Mid-flood, a real commit to the quiet app's repository arrives.
	time.Sleep(3 * time.Second)
	quiet.Write(map[string]string{"manifests/b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: quiet-b}\ndata: {k: v}\n"})
	sha := quiet.Commit("two")
	pushed := time.Now()
	if code := send(push(quietURL)); code != http.StatusOK {
		t.Fatalf("quiet push: %d", code)
	}
	var took time.Duration
	for {
		a := &v1alpha1.Application{}
		e.c.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: "quiet"}, a)
		if a.Status.Sync.Status == v1alpha1.SyncStatusSynced && a.Status.Sync.Revision == sha {
			took = time.Since(pushed)
			break
		}
		if time.Since(pushed) > 5*time.Second {
			t.Fatalf("the quiet app did not sync its pushed commit within 5 s during the flood (sync=%s rev=%s)", a.Status.Sync.Status, a.Status.Sync.Revision)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	elapsed := time.Since(started)
	time.Sleep(time.Second) // the last refresh's watch event
	n := refreshes.Load()
	limit := int64(elapsed/time.Second) + 1
	t.Logf("1,000 pushes in %s: %d refreshes of the flooded app (limit %d), %d not answered 200; the quiet app synced %s after its push", elapsed.Round(time.Millisecond), n, limit, failed.Load(), took.Round(time.Millisecond))
	if failed.Load() > 0 {
		t.Errorf("%d pushes were not answered 200", failed.Load())
	}
	if n == 0 || n > limit {
		t.Errorf("%d refreshes of the flooded app in %s; want 1..%d", n, elapsed, limit)
	}
}
