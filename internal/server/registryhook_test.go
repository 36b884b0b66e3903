package server_test

import (
	"context"
	"fmt"
	"github.com/mlcd-dev/mlcd/internal/egress"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/server"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
	"github.com/mlcd-dev/mlcd/internal/webhook"
)

// TestRegistryWebhookDeploysAtOnce: a model version registered after its
// app's gate refused it is deployed within seconds through the registry's
// signed webhook (MLflow's webhooks API on the embedded registry), not at
// the next poll (10 minutes here) nor at the next backoff retry.
func TestRegistryWebhookDeploysAtOnce(t *testing.T) {
	ce := clustertest.Get(t)
	ns := ce.Namespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	reg := registrytest.Start(t, registry.ServerOptions{})
	ctrl, err := controller.New(ctx, ce.Config, controller.ManagerOptions{
		Options:  controller.Options{Egress: egress.Policy{AllowLoopback: true}, PollInterval: 10 * time.Minute, ControllerNamespace: ns, Registry: reg.Client},
		CacheDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = ctrl.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	ctrl.Manager.GetCache().WaitForCacheSync(ctx)
	hooks := webhook.New(webhook.Options{Client: ctrl.Manager.GetClient(), Namespace: ns})
	srv, err := server.New(server.Options{Client: ctrl.Manager.GetClient(), Namespace: ns, InsecureNoAuth: true, RegistryWebhook: http.HandlerFunc(hooks.ServeMLflow)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	c, _ := client.New(ce.Config, client.Options{Scheme: controller.Scheme()})
	bg := context.Background()
	if err := c.Create(bg, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: webhook.SecretName, Namespace: ns}, StringData: map[string]string{webhook.MLflowSecretKey: "hook-secret"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Client.CreateWebhook(bg, "mlcd", hs.URL+"/api/webhook/mlflow", "hook-secret", []registry.WebhookEvent{{Entity: "MODEL_VERSION", Action: "CREATED"}, {Entity: "MODEL_VERSION_TAG", Action: "SET"}}); err != nil {
		t.Fatal(err)
	}
	hooksList, err := reg.Client.ListWebhooks(bg)
	if err != nil || len(hooksList) != 1 {
		t.Fatalf("webhooks: %v %v", hooksList, err)
	}

	repo := gittest.New(t)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/models/fraud-detection", "models/fraud-detection", nil)
	repo.CopyFS(examples.MLDeployments, "ml-deployments/base", "base", nil) // the shared model-server chart
	repo.Remove("models/fraud-detection/mlcd.yaml")
	repo.Commit("chart")
	mp := &v1alpha1.ModelPolicy{}
	yaml.Unmarshal([]byte("metadata: {name: fraud-detection}\nspec: {registeredModel: fraud-detection, environments: [{name: production, valuesFile: values-production.yaml, application: fd}]}\n"), mp)
	mp.Namespace = ns
	if err := c.Create(bg, mp); err != nil {
		t.Fatal(err)
	}
	dest := ns + "-fd"
	app := &v1alpha1.Application{}
	yaml.Unmarshal([]byte(fmt.Sprintf(`metadata: {name: fd}
spec:
  project: default
  source: {repoURL: %s, targetRevision: main, path: models/fraud-detection, helm: {valueFiles: [values-production.yaml]}}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`, repo.URL(), dest)), app)
	app.Namespace = ns
	if err := c.Create(bg, app); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(bg, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: dest}}) })

	// The gate refuses: v2.3.1 is not registered. Wait out the first
	// backoff retries (0.5 s doubling: the next after ~16 s comes ~16 s
	// later), so only the webhook can explain a prompt deployment.
	refused := time.Now()
	for {
		a := &v1alpha1.Application{}
		c.Get(bg, types.NamespacedName{Namespace: ns, Name: "fd"}, a)
		if len(a.Status.Conditions) > 0 && a.Status.Conditions[0].Type == v1alpha1.ConditionModelGate {
			break
		}
		if time.Since(refused) > 30*time.Second {
			t.Fatalf("gate not refused: %+v", a.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(17 * time.Second)
	registered := time.Now()
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95})
	for {
		d := &appsv1.Deployment{}
		if err := c.Get(bg, types.NamespacedName{Namespace: dest, Name: "fraud-detection"}, d); err == nil {
			t.Logf("deployed %s after the version was registered", time.Since(registered).Round(10*time.Millisecond))
			return
		}
		if time.Since(registered) > 5*time.Second {
			t.Fatal("not deployed within 5 s of the registration: the registry webhook did not refresh the app")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
