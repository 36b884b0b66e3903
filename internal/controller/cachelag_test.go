package controller_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// laggingWatches delays every ConfigMap watch stream by lag: the
// controller's informers see each change lag after the API server made
// it (a loaded API server, a slow network).
type laggingWatches struct {
	next http.RoundTripper
	lag  time.Duration
}

func (l *laggingWatches) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(req)
	if err != nil || req.URL.Query().Get("watch") != "true" || !strings.HasSuffix(req.URL.Path, "/configmaps") {
		return resp, err
	}
	pr, pw := io.Pipe()
	type chunk struct {
		data []byte
		at   time.Time
	}
	chunks := make(chan chunk, 1024)
	body := resp.Body
	go func() { // read as the server sends
		defer close(chunks)
		for {
			buf := make([]byte, 32*1024)
			n, err := body.Read(buf)
			if n > 0 {
				chunks <- chunk{buf[:n], time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // hand on lag later
		defer func() { _ = body.Close() }()
		for c := range chunks {
			time.Sleep(time.Until(c.at.Add(l.lag)))
			if _, err := pw.Write(c.data); err != nil {
				return
			}
		}
		_ = pw.Close()
	}()
	resp.Body = pr
	return resp, nil
}

// TestStaleObjectConfirmedPastTheCache: an object a sync created and the
// next commit removes is pruned even when the controller's cache has not
// seen it yet — a stale inventory entry the cache does not show is read
// from the API server before it is called gone (dropped from the
// inventory unpruned, it would run forever, unowned).
func TestStaleObjectConfirmedPastTheCache(t *testing.T) {
	const lag = 8 * time.Second
	h := startConfig(t, controller.Options{PollInterval: time.Minute}, func(cfg *rest.Config) {
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &laggingWatches{next: rt, lag: lag} })
	})
	repo := gittest.New(t)
	shaA := repo.Write(map[string]string{"manifests/keep.yaml": cm("lag-keep"), "manifests/brief.yaml": cm("lag-brief")}).Commit("two")
	h.create(dirApp, map[string]string{"{{NAME}}": "lag", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.eventually(30*time.Second, "the first sync recorded both objects", func() (bool, string) {
		a := h.app("lag")
		return a.Status.Sync.Revision == shaA && len(a.Status.Resources) == 2, a.Status.Sync.Status
	})
	began := time.Now()
	shaB := repo.Remove("manifests/brief.yaml").Commit("drop brief")
	h.refresh("lag")
	h.eventually(30*time.Second, "the next sync at the commit that drops brief", func() (bool, string) {
		a := h.app("lag")
		return a.Status.Sync.Revision == shaB && len(a.Status.Resources) == 1, a.Status.Sync.Status
	})
	if time.Since(began) >= lag {
		t.Skipf("the second sync came %s after the first: the cache had caught up, nothing was tested", time.Since(began))
	}
	h.eventually(15*time.Second, "brief pruned", func() (bool, string) {
		err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: "lag-brief"}, &corev1.ConfigMap{})
		return apierrors.IsNotFound(err), "lag-brief still exists, unowned"
	})
	if a := h.waitSynced("lag", shaB); a.Status.OperationState == nil || !strings.Contains(a.Status.OperationState.Message, "pruned 1") {
		t.Errorf("the sync does not say it pruned brief: %+v", a.Status.OperationState)
	}
}
