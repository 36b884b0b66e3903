package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/webhook"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/metrics"
	"github.com/mlcd-dev/mlcd/internal/server"
)

// newMetrics is the process's metrics registry and recorder.
func newMetrics() (*prometheus.Registry, *metrics.Recorder) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, metrics.New(reg)
}

// apiOptions configure the API server of `mlcd up` and `mlcd server`.
type apiOptions struct {
	listen         string
	tokensFile     string
	insecureNoAuth bool
}

// startAPI serves the API for the controller c on o.listen (a free port
// when the port is taken) until ctx ends; it returns the URL.
func startAPI(ctx context.Context, cfg *rest.Config, c *controller.Controller, reg *prometheus.Registry, o apiOptions, errc chan<- error) (string, error) {
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		host, _, _ := net.SplitHostPort(o.listen)
		if ln, err = net.Listen("tcp", net.JoinHostPort(host, "0")); err != nil {
			return "", fmt.Errorf("API server cannot listen on %s: %w", o.listen, err)
		}
	}
	if o.insecureNoAuth && !isLoopback(ln.Addr()) {
		ln.Close()
		return "", fmt.Errorf("--insecure-no-auth is only allowed on a loopback address, not %s", ln.Addr())
	}
	var auth *server.Auth
	if !o.insecureNoAuth {
		if auth, err = server.NewAuth(o.tokensFile, c.Manager.GetClient(), c.Namespace()); err != nil {
			ln.Close()
			return "", err
		}
	}
	watcher, err := client.NewWithWatch(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		ln.Close()
		return "", err
	}
	metrics.CollectApps(reg, c.Manager.GetClient())
	hooks := webhook.New(webhook.Options{Client: c.Manager.GetClient(), Namespace: c.Namespace(), AppNamespaces: c.Reconciler.Options.AppNamespaces})
	var models server.ModelRegistry
	if m, ok := c.Reconciler.Options.Registry.(server.ModelRegistry); ok {
		models = m
	}
	srv, err := server.New(server.Options{
		Client:        c.Manager.GetClient(),
		APIReader:     c.Manager.GetAPIReader(),
		Revisions:     c.Reconciler,
		Registry:      models,
		Namespace:     c.Namespace(),
		AppNamespaces: c.Reconciler.Options.AppNamespaces,
		Differ:        c.Reconciler,
		Watch: func(ctx context.Context) (watch.Interface, error) {
			return watcher.Watch(ctx, &v1alpha1.ApplicationList{})
		},
		Auth:            auth,
		InsecureNoAuth:  o.insecureNoAuth,
		Metrics:         promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Webhook:         hooks,
		RegistryWebhook: http.HandlerFunc(hooks.ServeMLflow),
	})
	if err != nil {
		ln.Close()
		return "", err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("API server: %w", err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// ensureAdminToken returns the tokens file of a state dir, creating it
// with one admin token on first use, and the token.
func ensureAdminToken(stateDir string) (file, token string, err error) {
	file = filepath.Join(stateDir, "api-tokens.yaml")
	if data, err := os.ReadFile(file); err == nil {
		var doc struct {
			Tokens []server.TokenEntry `json:"tokens"`
		}
		if yaml.Unmarshal(data, &doc) == nil {
			for _, t := range doc.Tokens {
				if t.Role == "admin" {
					return file, t.Token, nil
				}
			}
		}
	}
	b := make([]byte, 24)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", "", err
	}
	token = hex.EncodeToString(b)
	data, _ := yaml.Marshal(map[string]any{"tokens": []server.TokenEntry{{Name: "admin", Token: token, Role: "admin"}}})
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return "", "", err
	}
	return file, token, nil
}

// subscribeRegistry makes the registry at registryURL tell the API at
// apiURL about new model versions (MLflow's webhooks API), with a fresh
// secret stored where the receiver reads it (argocd-secret). A version
// registered after its gate refused it is then deployed within seconds.
func subscribeRegistry(ctx context.Context, c client.Client, namespace, registryURL, apiURL string) error {
	rc, err := registry.NewClient(registry.ClientOptions{URL: registryURL, Token: os.Getenv("MLFLOW_TRACKING_TOKEN")})
	if err != nil {
		return err
	}
	b := make([]byte, 24)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return err
	}
	secret := hex.EncodeToString(b)
	s := &corev1.Secret{}
	err = c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: webhook.SecretName}, s)
	switch {
	case apierrors.IsNotFound(err):
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: webhook.SecretName, Namespace: namespace}, Data: map[string][]byte{webhook.MLflowSecretKey: []byte(secret)}}
		if err := c.Create(ctx, s); err != nil {
			return fmt.Errorf("store the registry webhook secret: %w", err)
		}
	case err != nil:
		return err
	default:
		before := s.DeepCopy()
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[webhook.MLflowSecretKey] = []byte(secret)
		if err := c.Patch(ctx, s, client.MergeFrom(before)); err != nil {
			return fmt.Errorf("store the registry webhook secret: %w", err)
		}
	}
	hooks, err := rc.ListWebhooks(ctx)
	if err != nil {
		return err
	}
	for _, h := range hooks {
		if h.Name == "mlcd-controller" {
			if err := rc.DeleteWebhook(ctx, h.WebhookID); err != nil {
				return err
			}
		}
	}
	_, err = rc.CreateWebhook(ctx, "mlcd-controller", apiURL+"/api/webhook/mlflow", secret, []registry.WebhookEvent{
		{Entity: "MODEL_VERSION", Action: "CREATED"},
		{Entity: "MODEL_VERSION_TAG", Action: "SET"},
		{Entity: "MODEL_VERSION_ALIAS", Action: "CREATED"},
	})
	return err
}
