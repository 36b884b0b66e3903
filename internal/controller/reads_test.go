package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/internal/controller"
)

// getCounter counts API GETs of single objects (not lists or watches) in
// one namespace.
type getCounter struct {
	ns   atomic.Value
	gets atomic.Int64
	next http.RoundTripper
}

func (c *getCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	ns, _ := c.ns.Load().(string)
	if req.Method == http.MethodGet && ns != "" && !req.URL.Query().Has("watch") {
		// .../namespaces/<ns>/<resource>/<name>
		parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
		if n := len(parts); n >= 4 && parts[n-4] == "namespaces" && parts[n-3] == ns {
			c.gets.Add(1)
		}
	}
	return c.next.RoundTrip(req)
}

// TestLiveObjectsReadOncePerReconcile: a reconcile of a 3-object app
// (Deployment, Service, HPA) reads each live object at most once from the
// API server (the controller reads from its cache; the server-side apply
// of existing objects reads each once).
func TestLiveObjectsReadOncePerReconcile(t *testing.T) {
	counter := &getCounter{}
	rec := &recorder{app: "reads"}
	h := startConfig(t, controller.Options{PollInterval: time.Minute, Recorder: rec}, func(cfg *rest.Config) {
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	})
	repo := modelRepo(t)
	dest := h.ns + "-reads"
	h.namespaceGone(t, dest)
	h.create(app, map[string]string{"{{NAME}}": "reads", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitSynced("reads", "")
	if n := len(h.app("reads").Status.Resources); n != 3 {
		t.Fatalf("app has %d resources, want 3", n)
	}
	counter.ns.Store(dest)
	rec.mu.Lock()
	before := len(rec.times)
	rec.mu.Unlock()
	// Refreshes (at rest) and a forced comparison after drift.
	for i := range 5 {
		h.refresh("reads")
		h.eventually(10*time.Second, fmt.Sprintf("reconcile %d", i), func() (bool, string) {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return len(rec.times) > before+i, ""
		})
	}
	d := h.deployment(dest, "fraud-detection")
	h.patchLabel(d, "app.kubernetes.io/instance", "someone-else")
	h.eventually(10*time.Second, "drift healed", func() (bool, string) {
		l := h.deployment(dest, "fraud-detection").Labels["app.kubernetes.io/instance"]
		return l == "reads", l
	})
	time.Sleep(500 * time.Millisecond)
	rec.mu.Lock()
	reconciles := len(rec.times) - before
	rec.mu.Unlock()
	gets := counter.gets.Load()
	t.Logf("%d API GETs of the app's objects over %d reconciles", gets, reconciles)
	if gets > int64(3*reconciles) {
		t.Fatalf("%d GETs over %d reconciles of a 3-object app: more than one read per object per reconcile", gets, reconciles)
	}
}

// patchLabel sets a label on a live object, as another writer would.
func (h *harness) patchLabel(o client.Object, key, value string) {
	h.t.Helper()
	patch := []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, key, value))
	if err := h.c.Patch(context.Background(), o, client.RawPatch(types.MergePatchType, patch)); err != nil {
		h.t.Fatal(err)
	}
}
