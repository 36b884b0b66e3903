package controller_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/localcluster"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// clusterSecret is Argo CD's cluster Secret for the cluster at cfg, with
// token (when set) instead of cfg's client certificate.
func clusterSecret(t *testing.T, ns, name string, cfg *rest.Config, token string) *corev1.Secret {
	t.Helper()
	if err := rest.LoadTLSFiles(cfg); err != nil {
		t.Fatal(err)
	}
	tls := map[string]any{"caData": cfg.CAData, "certData": cfg.CertData, "keyData": cfg.KeyData}
	conf := map[string]any{"tlsClientConfig": tls}
	if token != "" {
		conf = map[string]any{"bearerToken": token, "tlsClientConfig": map[string]any{"caData": cfg.CAData}}
	}
	data, _ := json.Marshal(conf)
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"argocd.argoproj.io/secret-type": "cluster"}},
		StringData: map[string]string{"name": name, "server": cfg.Host, "config": string(data)},
	}
}

// TestSecondCluster: an app whose destination names a cluster Secret
// syncs to that cluster (and self-heals there); a Secret with bad
// credentials fails only its apps, naming the cluster and never the
// token; stopping the cluster marks only its apps while the in-cluster
// app keeps syncing; back up, its apps sync again.
func TestSecondCluster(t *testing.T) {
	h := start(t, time.Minute)
	ctx := context.Background()
	second, err := localcluster.Start(ctx, localcluster.Options{StateDir: t.TempDir(), Binary: os.Getenv("MLCD_CONTROLPLANE"), StartTimeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Stop() })
	remoteCfg, err := second.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	remote, err := client.New(remoteCfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.c.Create(ctx, clusterSecret(t, h.ns, "gpu-east", rest.CopyConfig(remoteCfg), "")); err != nil {
		t.Fatal(err)
	}
	const token = "s3cr3t-wrong-token"
	if err := h.c.Create(ctx, clusterSecret(t, h.ns, "gpu-west", rest.CopyConfig(remoteCfg), token)); err != nil {
		t.Fatal(err)
	}
	// gpu-west names the same server: give it its own URL form.
	west := &corev1.Secret{}
	h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "gpu-west"}, west)
	west.Data["server"] = []byte(strings.Replace(remoteCfg.Host, "127.0.0.1", "localhost", 1))
	if err := h.c.Update(ctx, west); err != nil {
		t.Fatal(err)
	}

	repo := gittest.New(t)
	repo.Write(map[string]string{"manifests/a.yaml": cm("a")})
	sha := repo.Commit("one")
	app := func(name, dest string) {
		doc := strings.Replace(dirApp, "server: https://kubernetes.default.svc", dest, 1)
		h.create(doc, map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{DEST}}": "models", "{{PRUNE}}": "true"})
	}
	doc := strings.Replace(dirApp, "syncPolicy:", "syncPolicy:\n    syncOptions: [CreateNamespace=true]", 1)
	h.create(strings.Replace(doc, "server: https://kubernetes.default.svc", "name: gpu-east", 1), map[string]string{"{{NAME}}": "east", "{{REPO}}": repo.URL(), "{{DEST}}": "models", "{{PRUNE}}": "true"})
	app("west", "name: gpu-west")
	h.create(dirApp, map[string]string{"{{NAME}}": "local", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})

	h.waitSynced("east", sha)
	h.waitSynced("local", sha)
	var got corev1.ConfigMap
	if err := remote.Get(ctx, types.NamespacedName{Namespace: "models", Name: "a"}, &got); err != nil {
		t.Fatalf("the app's ConfigMap is not on the second cluster: %v", err)
	}
	if err := h.c.Get(ctx, types.NamespacedName{Namespace: "models", Name: "a"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("the second cluster's ConfigMap is on the first: %v", err)
	}
	if a := h.app("east"); a.Status.Resources[0].Namespace != "models" {
		t.Errorf("resources %+v", a.Status.Resources)
	}

	// A clusters generator yields the clusters of the Secrets its
	// selector matches.
	east := &corev1.Secret{}
	h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "gpu-east"}, east)
	east.Labels["accelerator"] = "gpu"
	if err := h.c.Update(ctx, east); err != nil {
		t.Fatal(err)
	}
	set := &v1alpha1.ApplicationSet{}
	if err := yaml.UnmarshalStrict([]byte(strings.NewReplacer("{{NS}}", h.ns, "{{REPO}}", repo.URL()).Replace(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: per-gpu-cluster, namespace: {{NS}}}
spec:
  generators:
  - clusters: {selector: {matchLabels: {accelerator: gpu}}}
  template:
    metadata: {name: "cfg-{{name}}"}
    spec:
      project: default
      source: {repoURL: {{REPO}}, targetRevision: main, path: manifests}
      destination: {server: "{{server}}", namespace: models}
`)), set); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Create(ctx, set); err != nil {
		t.Fatal(err)
	}
	h.eventually(30*time.Second, "the set's app for gpu-east", func() (bool, string) {
		var list v1alpha1.ApplicationList
		h.c.List(ctx, &list, client.InNamespace(h.ns), client.MatchingLabels{v1alpha1.AppSetLabel: "per-gpu-cluster"})
		var names []string
		for _, a := range list.Items {
			names = append(names, a.Name+"→"+a.Spec.Destination.Server)
		}
		return len(names) == 1 && names[0] == "cfg-gpu-east→"+remoteCfg.Host, strings.Join(names, ",")
	})

	// Self-heal on the second cluster: its watch sees the edit.
	got.Data["k"] = "edited"
	if err := remote.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	h.eventually(15*time.Second, "the edit on the second cluster healed", func() (bool, string) {
		var cur corev1.ConfigMap
		remote.Get(ctx, types.NamespacedName{Namespace: "models", Name: "a"}, &cur)
		return cur.Data["k"] == "v", cur.Data["k"]
	})

	// Bad credentials: only west fails, naming its cluster, not the token.
	h.waitCondition("west", v1alpha1.ConditionComparisonError, "gpu-west")
	for _, c := range h.app("west").Status.Conditions {
		if strings.Contains(c.Message, token) {
			t.Errorf("condition shows the token: %s", c.Message)
		}
	}
	for _, e := range h.events("west") {
		if strings.Contains(e, token) {
			t.Errorf("event shows the token: %s", e)
		}
	}
	if a := h.app("west"); a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
		t.Errorf("west is %s", a.Status.Sync.Status)
	}

	// The second cluster stops: east says so; local keeps syncing.
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
	h.waitCondition("east", v1alpha1.ConditionComparisonError, "gpu-east")
	repo.Write(map[string]string{"manifests/b.yaml": cm("b")})
	sha2 := repo.Commit("two")
	h.refresh("local")
	h.waitSynced("local", sha2)
	if a := h.app("east"); a.Status.Sync.Status == v1alpha1.SyncStatusSynced && a.Status.Sync.Revision == sha2 {
		t.Errorf("east claims %s at %s while its cluster is down", a.Status.Sync.Status, shortSHA(sha2))
	}

	// Back up on the same state: east converges to the new commit.
	second, err = localcluster.Start(ctx, localcluster.Options{StateDir: second.StateDir, Binary: os.Getenv("MLCD_CONTROLPLANE"), StartTimeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Stop() })
	h.refresh("east")
	h.eventually(90*time.Second, "east synced after its cluster came back", func() (bool, string) {
		a := h.app("east")
		return a.Status.Sync.Status == v1alpha1.SyncStatusSynced && a.Status.Sync.Revision == sha2, a.Status.Sync.Status + " " + shortSHA(a.Status.Sync.Revision)
	})
	remoteCfg, _ = second.RESTConfig()
	remote, _ = client.New(remoteCfg, client.Options{})
	if err := remote.Get(ctx, types.NamespacedName{Namespace: "models", Name: "b"}, &corev1.ConfigMap{}); err != nil {
		t.Errorf("the new ConfigMap is not on the second cluster: %v", err)
	}
}
