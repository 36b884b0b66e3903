package controller_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/mlcd-dev/mlcd/internal/controller"
)

// writeTimes records when each server-side apply to a resource of one
// namespace started and when its answer came.
type writeTimes struct {
	mu         sync.Mutex
	ns         string
	start, end map[string]time.Time
	next       http.RoundTripper
}

func (w *writeTimes) RoundTrip(req *http.Request) (*http.Response, error) {
	// .../namespaces/<ns>/<resource>/<name>
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	n := len(parts)
	w.mu.Lock()
	ns := w.ns
	w.mu.Unlock()
	if req.Method != http.MethodPatch || n < 4 || parts[n-4] != "namespaces" || parts[n-3] != ns || req.URL.Query().Has("dryRun") {
		return w.next.RoundTrip(req)
	}
	res := parts[n-2]
	w.mu.Lock()
	if _, seen := w.start[res]; !seen {
		w.start[res] = time.Now()
	}
	w.mu.Unlock()
	resp, err := w.next.RoundTrip(req)
	w.mu.Lock()
	if _, seen := w.end[res]; !seen {
		w.end[res] = time.Now()
	}
	w.mu.Unlock()
	return resp, err
}

// TestAutoscalerCreatedAfterItsTarget: a new app's HorizontalPodAutoscaler
// is created only once the Deployment it scales exists. Created together,
// the HPA controller may look for the Deployment first, report
// FailedGetScale and hold the app Degraded until its next resync (15 s):
// every new model app flapped to Degraded (and notified) in the bench.
func TestAutoscalerCreatedAfterItsTarget(t *testing.T) {
	w := &writeTimes{start: map[string]time.Time{}, end: map[string]time.Time{}}
	h := startConfig(t, controller.Options{PollInterval: time.Minute}, func(cfg *rest.Config) {
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { w.next = rt; return w })
	})
	dest := h.ns + "-order"
	w.mu.Lock()
	w.ns = dest
	w.mu.Unlock()
	repo := modelRepo(t)
	h.namespaceGone(t, dest)
	h.create(app, map[string]string{"{{NAME}}": "order", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitSynced("order", "")
	w.mu.Lock()
	defer w.mu.Unlock()
	deployed, ok1 := w.end["deployments"]
	scaled, ok2 := w.start["horizontalpodautoscalers"]
	if !ok1 || !ok2 {
		t.Fatalf("saw applies of %v, want deployments and horizontalpodautoscalers", w.start)
	}
	if scaled.Before(deployed) {
		t.Fatalf("the HPA's create started %s before the Deployment's create was answered", deployed.Sub(scaled))
	}
	if got := h.app("order").Status.Health.Status; got == "Degraded" {
		t.Fatalf("app health %s after its first sync", got)
	}
}
