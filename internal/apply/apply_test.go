package apply_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
)

func TestMain(m *testing.M) { os.Exit(clustertest.Run(m)) }

// namespaceRequests counts requests for one namespace object.
type namespaceRequests struct {
	path string
	n    atomic.Int64
	next http.RoundTripper
}

func (c *namespaceRequests) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.TrimSuffix(req.URL.Path, "/") == c.path {
		c.n.Add(1)
	}
	return c.next.RoundTrip(req)
}

// TestEnsureNamespaceAsksOnce: many syncs into one team namespace (a cold
// start of a fleet) ask the API server about it once or twice, not once
// each; the namespace exists afterwards.
func TestEnsureNamespaceAsksOnce(t *testing.T) {
	env := clustertest.Get(t)
	name := env.Namespace(t) + "-team"
	counter := &namespaceRequests{path: "/api/v1/namespaces/" + name}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter })
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := apply.New(c, c)
	ctx := context.Background()
	t.Cleanup(func() { _ = c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}) })
	if err := a.EnsureNamespace(ctx, name); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := a.EnsureNamespace(ctx, name); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	// The first call: a GET (not found) and the apply; the Get above: 1.
	if got := counter.n.Load(); got > 3 {
		t.Fatalf("51 EnsureNamespace calls made %d requests for the namespace, want at most 2 (and 1 for the check)", got-1)
	}

	// A fleet's first syncs into a new namespace all start at once: they
	// share one question.
	fresh := env.Namespace(t) + "-burst"
	burst := &namespaceRequests{path: "/api/v1/namespaces/" + fresh}
	cfg = rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { burst.next = rt; return burst })
	if c, err = client.New(cfg, client.Options{}); err != nil {
		t.Fatal(err)
	}
	a = apply.New(c, c)
	t.Cleanup(func() { _ = c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fresh}}) })
	start := make(chan struct{})
	for range 50 {
		wg.Go(func() {
			<-start
			if err := a.EnsureNamespace(ctx, fresh); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := burst.n.Load(); got > 2 {
		t.Fatalf("50 concurrent first EnsureNamespace calls made %d requests for the namespace, want at most 2 (a GET and the apply)", got)
	}
}
