package controller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// shardApp is a directory app pinned to shard {{SHARD}}.
const shardApp = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: {{NAME}}, namespace: {{NS}}, annotations: {mlcd.io/shard: "{{SHARD}}"}}
spec:
  project: default
  source: {repoURL: {{REPO}}, targetRevision: main, path: {{PATH}}}
  destination: {server: https://kubernetes.default.svc, namespace: {{NS}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
`

// TestShardCachesItsOwnObjects: a controller of shard 0 of 2 labels what
// it applies with its shard and caches only those objects — not the
// ConfigMaps of other shards' apps or of anyone else — yet still sees, past
// its cache, an object another shard's app manages (it refuses to take
// it), and still heals drift on its own objects.
func TestShardCachesItsOwnObjects(t *testing.T) {
	h := startOpts(t, controller.Options{PollInterval: time.Minute, Shards: 2, Shard: 0})
	ctx := context.Background()
	// Objects this shard must not cache: 20 ConfigMaps of nobody, and one
	// of shard 1's app.
	for i := range 20 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: fmt.Sprintf("foreign-%d", i)}, Data: map[string]string{"k": "v"}}
		if err := h.c.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	repo := gittest.New(t)
	repo.Write(map[string]string{
		"mine/cm.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\ndata: {k: v}\n",
		"taker/cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {k: taker}\n",
		"theirs/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {k: theirs}\n",
	})
	sha := repo.Commit("three apps")
	// shard 1's app exists (no controller of shard 1 runs) and its object
	// is there, labelled for shard 1.
	h.create(shardApp, map[string]string{"{{NAME}}": "theirs", "{{REPO}}": repo.URL(), "{{PATH}}": "theirs", "{{SHARD}}": "1"})
	shared := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "shared",
		Labels:      map[string]string{controller.ShardAnnotation: "1"},
		Annotations: map[string]string{manifest.AppAnnotation: h.ns + "/theirs"}}, Data: map[string]string{"k": "theirs"}}
	if err := h.c.Create(ctx, shared); err != nil {
		t.Fatal(err)
	}
	// ... and in its inventory, as shard 1's controller would have written
	// it (a claim counts only for an app whose inventory lists the object).
	theirs := h.app("theirs")
	theirs.Status.Resources = []v1alpha1.ResourceStatus{{Version: "v1", Kind: "ConfigMap", Namespace: h.ns, Name: "shared"}}
	if err := h.c.Update(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	h.create(shardApp, map[string]string{"{{NAME}}": "mine", "{{REPO}}": repo.URL(), "{{PATH}}": "mine", "{{SHARD}}": "0"})
	h.create(shardApp, map[string]string{"{{NAME}}": "taker", "{{REPO}}": repo.URL(), "{{PATH}}": "taker", "{{SHARD}}": "0"})
	h.waitSynced("mine", sha)

	var cm corev1.ConfigMap
	if err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "mine"}, &cm); err != nil {
		t.Fatal(err)
	}
	if got := cm.Labels[controller.ShardAnnotation]; got != "0" {
		t.Errorf("the applied ConfigMap's %s label is %q, want \"0\"", controller.ShardAnnotation, got)
	}

	// The object shard 1's app manages is not in this shard's cache, but
	// the taker sees it and leaves it alone.
	h.waitCondition("taker", "SyncError", "ConfigMap shared is managed by application "+h.ns+"/theirs")
	if err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "shared"}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["k"] != "theirs" || cm.Labels[controller.ShardAnnotation] != "1" {
		t.Errorf("shard 0 took shard 1's object: data %v, labels %v", cm.Data, cm.Labels)
	}

	var cached corev1.ConfigMapList
	if err := h.ctrl().CachedObjects(ctx, &cached); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cached.Items {
		names = append(names, c.Namespace+"/"+c.Name)
		if c.Labels[controller.ShardAnnotation] != "0" {
			t.Errorf("shard 0 caches %s/%s (labels %v)", c.Namespace, c.Name, c.Labels)
		}
	}
	if len(cached.Items) != 1 || cached.Items[0].Name != "mine" {
		t.Errorf("shard 0 caches ConfigMaps %v, want only %s/mine", names, h.ns)
	}

	// Drift on its own object is seen through the shard's cache and healed.
	if err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "mine"}, &cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["k"] = "drifted"
	if err := h.c.Update(ctx, &cm); err != nil {
		t.Fatal(err)
	}
	h.eventually(15*time.Second, "the drifted ConfigMap healed", func() (bool, string) {
		var now corev1.ConfigMap
		if err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "mine"}, &now); err != nil {
			return false, err.Error()
		}
		return now.Data["k"] == "v", fmt.Sprintf("data %v", now.Data)
	})
}
