package controller_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestSameObjectInTwoApps: two apps deploy one ConfigMap; the second
// leaves it alone and names the first, the first stays Synced, and the
// object does not flap between them. Deleting the first app without its
// resources lets the second adopt it.
func TestSameObjectInTwoApps(t *testing.T) {
	h := start(t, 2*time.Second)
	repo := gittest.New(t)
	repo.Write(map[string]string{"a/cm.yaml": cm("shared"), "b/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {k: other}\n", "b/own.yaml": cm("b-own")})
	sha := repo.Commit("two apps, one object")
	first := strings.Replace(dirApp, "path: manifests", "path: a", 1)
	h.create(first, map[string]string{"{{NAME}}": "first", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitSynced("first", sha)
	second := strings.Replace(dirApp, "path: manifests", "path: b", 1)
	h.create(second, map[string]string{"{{NAME}}": "second", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitCondition("second", v1alpha1.ConditionSyncError, "ConfigMap shared is managed by application "+h.ns+"/first")
	// A phased app (sync waves) claiming it is refused before any wave.
	repo.Write(map[string]string{"c/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared, annotations: {argocd.argoproj.io/sync-wave: \"1\"}}\ndata: {k: third}\n", "c/own.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c-own, annotations: {argocd.argoproj.io/sync-wave: \"0\"}}\n"})
	repo.Commit("a phased third app")
	third := strings.Replace(dirApp, "path: manifests", "path: c", 1)
	h.create(third, map[string]string{"{{NAME}}": "third", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitCondition("third", v1alpha1.ConditionSyncError, "ConfigMap shared is managed by application "+h.ns+"/first")
	if h.configMapExists(h.ns, "c-own") {
		t.Error("the phased app ran its waves over an object another app manages")
	}
	h.waitSynced("first", "")
	ctx := context.Background()
	var shared corev1.ConfigMap
	if err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "shared"}, &shared); err != nil {
		t.Fatal(err)
	}
	rv := shared.ResourceVersion
	time.Sleep(6 * time.Second) // three polls
	h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "shared"}, &shared)
	if shared.ResourceVersion != rv || shared.Data["k"] != "v" {
		t.Errorf("the shared object flapped: resourceVersion %s → %s, data %v", rv, shared.ResourceVersion, shared.Data)
	}
	if a := h.app("first"); a.Status.Sync.Status != v1alpha1.SyncStatusSynced {
		t.Errorf("first is %s", a.Status.Sync.Status)
	}
	if a := h.app("second"); a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
		t.Error("second says Synced over an object it may not deploy")
	}
	var own corev1.ConfigMap
	if err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "b-own"}, &own); err != nil {
		t.Errorf("second's own object was not applied: %v", err)
	}
	if err := h.c.Delete(ctx, h.app("third")); err != nil {
		t.Fatal(err)
	}
	// The first app goes, leaving its resources: the second adopts.
	if err := h.c.Delete(ctx, h.app("first")); err != nil {
		t.Fatal(err)
	}
	h.eventually(30*time.Second, "second adopts the shared object", func() (bool, string) {
		h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "shared"}, &shared)
		a := h.app("second")
		return shared.Data["k"] == "other" && a.Status.Sync.Status == v1alpha1.SyncStatusSynced, a.Status.Sync.Status + " " + shared.Data["k"]
	})
}

// TestApplicationSetTooLarge: a generation of 10,000 apps (a matrix of
// 100 × 100) is refused with a condition naming the bound; the set's
// existing apps stay.
func TestApplicationSetTooLarge(t *testing.T) {
	h := start(t, time.Minute)
	repo := gittest.New(t)
	repo.Write(map[string]string{"manifests/cm.yaml": cm("x")}).Commit("one")
	elems := func(key string, n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("{" + key + ": '" + itoa(i) + "'}")
		}
		return "[" + b.String() + "]"
	}
	doc := func(n int) string {
		return `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: huge, namespace: ` + h.ns + `}
spec:
  generators:
  - matrix:
      generators:
      - list: {elements: ` + elems("a", n) + `}
      - list: {elements: ` + elems("b", n) + `}
  template:
    metadata: {name: 'm-{{a}}-{{b}}'}
    spec:
      project: default
      source: {repoURL: ` + repo.URL() + `, targetRevision: main, path: manifests}
      destination: {server: https://kubernetes.default.svc, namespace: ` + h.ns + `}
`
	}
	set := &v1alpha1.ApplicationSet{}
	if err := yaml.UnmarshalStrict([]byte(doc(2)), set); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Create(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var list v1alpha1.ApplicationList
		h.c.List(context.Background(), &list, client.InNamespace(h.ns), client.MatchingLabels{v1alpha1.AppSetLabel: "huge"})
		return len(list.Items)
	}
	h.eventually(30*time.Second, "4 apps", func() (bool, string) { return count() == 4, itoa(count()) })
	big := &v1alpha1.ApplicationSet{}
	yaml.UnmarshalStrict([]byte(doc(100)), big)
	h.c.Get(context.Background(), client.ObjectKeyFromObject(set), set)
	set.Spec = big.Spec
	if err := h.c.Update(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	h.eventually(30*time.Second, "the set reports the bound", func() (bool, string) {
		h.c.Get(context.Background(), client.ObjectKeyFromObject(set), set)
		for _, c := range set.Status.Conditions {
			if c.Type == v1alpha1.AppSetConditionErrorOccurred && strings.Contains(c.Message, "10000 applications, more than the 5000") {
				return true, ""
			}
		}
		return false, ""
	})
	time.Sleep(2 * time.Second)
	if n := count(); n != 4 {
		t.Fatalf("%d apps after a refused generation, want the 4 that were there", n)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestReannotatedObjectStaysManaged: a tenant who may edit a namespace's
// objects re-annotates one that app "real" deploys to name another
// existing app ("decoy", which does not deploy it) and changes its data.
// The claim counts for nothing: self-heal puts the object back, still
// "real"'s, and "real" stays Synced.
func TestReannotatedObjectStaysManaged(t *testing.T) {
	h := start(t, 2*time.Second)
	repo := gittest.New(t)
	sha := repo.Write(map[string]string{"a/cm.yaml": cm("guarded"), "b/cm.yaml": cm("decoy-own")}).Commit("two apps")
	for name, path := range map[string]string{"real": "a", "decoy": "b"} {
		h.create(strings.Replace(dirApp, "path: manifests", "path: "+path, 1), map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	}
	h.waitSynced("real", sha)
	h.waitSynced("decoy", sha)
	ctx := context.Background()
	var live corev1.ConfigMap
	if err := h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "guarded"}, &live); err != nil {
		t.Fatal(err)
	}
	live.Annotations["mlcd.io/application"] = h.ns + "/decoy"
	live.Data["k"] = "tampered"
	if err := h.c.Update(ctx, &live); err != nil {
		t.Fatal(err)
	}
	h.eventually(30*time.Second, "self-heal restores the object as real's", func() (bool, string) {
		h.c.Get(ctx, types.NamespacedName{Namespace: h.ns, Name: "guarded"}, &live)
		return live.Data["k"] == "v" && live.Annotations["mlcd.io/application"] == h.ns+"/real", live.Data["k"] + " " + live.Annotations["mlcd.io/application"]
	})
	if a := h.app("real"); a.Status.Sync.Status != v1alpha1.SyncStatusSynced {
		t.Errorf("real is %s %v", a.Status.Sync.Status, a.Status.Conditions)
	}
}

// TestUnenforcedProjectFieldsRefused: a project with a sync window (or
// another Argo CD field mlcd does not enforce) is not silently treated as
// unrestricted: its apps get a condition naming the field and nothing is
// applied.
func TestUnenforcedProjectFieldsRefused(t *testing.T) {
	h := start(t, time.Minute)
	h.create(`apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: windowed, namespace: {{NS}}}
spec:
  sourceRepos: ["*"]
  destinations: [{server: "*", namespace: "*"}]
  syncWindows: [{kind: deny, schedule: "* * * * *", duration: 1h, applications: ["*"]}]
`, nil)
	repo := gittest.New(t)
	repo.Write(map[string]string{"manifests/cm.yaml": cm("windowed-cm")}).Commit("cm")
	h.create(strings.Replace(dirApp, "project: default", "project: windowed", 1), map[string]string{"{{NAME}}": "windowed", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitCondition("windowed", v1alpha1.ConditionInvalidSpecError, "sets spec.syncWindows, which mlcd does not enforce")
	if h.configMapExists(h.ns, "windowed-cm") {
		t.Error("an app of a project with an unenforced sync window was synced")
	}
}

// TestSymlinkOutOfTheRepositoryRefused: a chart whose symlinked directory
// leads to a file outside the repository (the controller's token, say) is
// refused at checkout with a condition naming the link; nothing is
// rendered or applied, what ran before keeps running, and another app of
// the same repository at that commit is refused too (the tree is refused
// whole) while an app of another repository keeps syncing.
func TestSymlinkOutOfTheRepositoryRefused(t *testing.T) {
	h := start(t, time.Minute)
	secret := filepath.Join(t.TempDir(), "token")
	os.WriteFile(secret, []byte("controller-token-PLANTED"), 0o600)
	repo := gittest.New(t)
	first := repo.Write(map[string]string{
		"chart/Chart.yaml":        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leaky}\ndata: {token: {{ .Files.Get \"link/t\" | quote }}}\n",
	}).Commit("a chart")
	h.create(strings.Replace(dirApp, "path: manifests", "path: chart", 1), map[string]string{"{{NAME}}": "leaky", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitSynced("leaky", first)
	repo.Write(map[string]string{"chart/link": "->../shared", "shared/t": "->" + secret}).Commit("link the token in")
	h.refresh("leaky")
	h.waitCondition("leaky", v1alpha1.ConditionComparisonError, "symlink shared/t points outside the repository")
	var live corev1.ConfigMap
	if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: "leaky"}, &live); err != nil {
		t.Fatalf("what ran before was removed: %v", err)
	}
	if strings.Contains(fmt.Sprint(live.Data), "PLANTED") {
		t.Fatal("the token outside the repository was rendered")
	}
	if a := h.app("leaky"); a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
		t.Error("Synced over a refused checkout")
	}
	other := gittest.New(t)
	sha := other.Write(map[string]string{"manifests/cm.yaml": cm("other-cm")}).Commit("other")
	h.create(dirApp, map[string]string{"{{NAME}}": "other", "{{REPO}}": other.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitSynced("other", sha)
}
