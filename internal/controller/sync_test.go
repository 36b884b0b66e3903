package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// The seed's Application, with only repoURL (and, for isolation, the
// Application's namespace) changed.
const seedApp = `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: fraud-detection-model
  namespace: {{NS}}
spec:
  project: ml-production
  source:
    repoURL: {{REPO}}
    targetRevision: main
    path: models/fraud-detection
    helm:
      valueFiles:
      - values-production.yaml
      parameters:
      - name: model.version
        value: "v2.3.1"
      - name: model.replicas
        value: "5"
  destination:
    server: https://kubernetes.default.svc
    namespace: ml-production
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
    - CreateNamespace=true
`

const project = `
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: {{PROJECT}}, namespace: {{NS}}}
spec:
  sourceRepos: ["*"]
  destinations: [{server: https://kubernetes.default.svc, namespace: "{{DEST}}"}]
  clusterResourceWhitelist: [{group: "", kind: Namespace}]
`

// app is a Helm app of the example chart without parameters, so the
// values file decides the version.
const app = `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: {{NAME}}, namespace: {{NS}}}
spec:
  project: default
  source:
    repoURL: {{REPO}}
    targetRevision: main
    path: models/fraud-detection
    helm: {valueFiles: [values-production.yaml]}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy:
    automated: {prune: true, selfHeal: {{SELFHEAL}}}
    syncOptions: [CreateNamespace=true]
`

func TestSeedApplicationSyncs(t *testing.T) {
	h := start(t, time.Minute)
	repo := modelRepo(t)
	sha := repo.Commit("noop")
	h.namespaceGone(t, "ml-production")
	h.create(project, map[string]string{"{{PROJECT}}": "ml-production", "{{DEST}}": "ml-production"})
	h.create(seedApp, map[string]string{"{{REPO}}": repo.URL()})

	a := h.waitSynced("fraud-detection-model", sha)
	// The chart leaves replicas to its HPA (minReplicas 5).
	var d *appsv1.Deployment
	h.eventually(60*time.Second, "5 ready replicas at v2.3.1", func() (bool, string) {
		d = h.deployment("ml-production", "fraud-detection")
		return d != nil && *d.Spec.Replicas == 5 && d.Status.ReadyReplicas == 5 && strings.HasSuffix(image(d), ":v2.3.1"), fmt.Sprintf("%+v", d.Status)
	})
	if v := d.Spec.Template.Annotations["mlcd.io/model-version"]; v != "v2.3.1" {
		t.Errorf("pod template model version %q", v)
	}
	if len(a.Status.History) != 1 || a.Status.History[0].Revision != sha {
		t.Errorf("history = %+v, want one entry at %s", a.Status.History, sha)
	}
	if a.Status.SourceType != "Helm" || len(a.Status.Resources) != 3 {
		t.Errorf("sourceType %s, resources %v", a.Status.SourceType, a.Status.Resources)
	}
	if d.Labels["app.kubernetes.io/instance"] != "fraud-detection-model" {
		t.Errorf("tracking label = %q", d.Labels["app.kubernetes.io/instance"])
	}
}

func TestCommitIsLiveAfterRefreshAndAfterPoll(t *testing.T) {
	h := start(t, 3*time.Second)
	repo := modelRepo(t)
	dest := h.ns + "-dest"
	h.namespaceGone(t, dest)
	h.create(app, map[string]string{"{{NAME}}": "fd", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitSynced("fd", "")

	bump := func(v string) string {
		repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": fmt.Sprintf("model:\n  version: %s\n  replicas: 5\n", v)})
		return repo.Commit("bump " + v)
	}
	live := func(v string) func() (bool, string) {
		return func() (bool, string) {
			d := h.deployment(dest, "fraud-detection")
			return d != nil && strings.HasSuffix(image(d), ":"+v), fmt.Sprint(d != nil && true)
		}
	}
	bump("v2.3.2")
	h.refresh("fd")
	// The contract: live within 2 s of a refresh request.
	took := h.eventually(2*time.Second, "v2.3.2 live after refresh", live("v2.3.2"))
	t.Logf("live %s after the refresh annotation", took.Round(10*time.Millisecond))

	sha := bump("v2.3.3")
	// The contract: live within one poll interval (3 s, requeues jittered
	// +10%) plus the fetch, render and apply of one reconcile (up to 1.5 s
	// on a loaded 2-core machine).
	took = h.eventually(3*time.Second*11/10+1500*time.Millisecond, "v2.3.3 live after a poll", live("v2.3.3"))
	t.Logf("live %s after the commit, poll interval 3s", took.Round(10*time.Millisecond))
	// The Deployment changes before the status write that records the
	// sync, so wait for the status at this commit, not any Synced one.
	a := h.waitSynced("fd", sha)
	if len(a.Status.History) != 3 {
		t.Errorf("history has %d entries, want 3", len(a.Status.History))
	}
}

const dirApp = `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: {{NAME}}, namespace: {{NS}}}
spec:
  project: default
  source: {repoURL: {{REPO}}, targetRevision: main, path: manifests}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy:
    automated: {prune: {{PRUNE}}, selfHeal: true}
`

func cm(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {k: v}\n", name)
}

func TestPrune(t *testing.T) {
	h := start(t, time.Minute)
	for _, prune := range []bool{true, false} {
		t.Run(fmt.Sprint("prune=", prune), func(t *testing.T) {
			// Each app its own objects: two apps may not deploy one object.
			name := fmt.Sprintf("prune-%v", prune)
			a, b := name+"-a", name+"-b"
			repo := gittest.New(t)
			repo.Write(map[string]string{"manifests/a.yaml": cm(a), "manifests/b.yaml": cm(b)})
			repo.Commit("two")
			h.create(dirApp, map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": fmt.Sprint(prune)})
			h.waitSynced(name, "")
			// An object nobody applied must never be pruned.
			bystander := &corev1.ConfigMap{}
			bystander.Name, bystander.Namespace = "bystander-"+name, h.ns
			if err := h.c.Create(context.Background(), bystander); err != nil {
				t.Fatal(err)
			}
			sha := repo.Remove("manifests/b.yaml").Commit("drop b")
			h.refresh(name)
			exists := func(n string) bool {
				err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: n}, &corev1.ConfigMap{})
				return !apierrors.IsNotFound(err)
			}
			if prune {
				h.eventually(15*time.Second, "b pruned", func() (bool, string) { return !exists(b), "b exists" })
				h.waitSynced(name, sha)
			} else {
				h.eventually(15*time.Second, "app OutOfSync with b kept", func() (bool, string) {
					app := h.app(name)
					return app.Status.Sync.Status == v1alpha1.SyncStatusOutOfSync && app.Status.Sync.Revision == sha, app.Status.Sync.Status
				})
				time.Sleep(time.Second)
				if !exists(b) {
					t.Fatal("b was pruned with prune: false")
				}
			}
			if !exists(a) || !exists("bystander-"+name) {
				t.Fatal("a kept object or an unmanaged object was deleted")
			}
		})
	}
}

func TestSelfHeal(t *testing.T) {
	h := start(t, time.Minute)
	for _, heal := range []bool{true, false} {
		t.Run(fmt.Sprint("selfHeal=", heal), func(t *testing.T) {
			repo := modelRepo(t)
			dest := fmt.Sprintf("%s-heal-%v", h.ns, heal)
			h.namespaceGone(t, dest)
			name := fmt.Sprintf("heal-%v", heal)
			// Without autoscaling: the chart sets replicas, mlcd asserts them.
			doc := strings.Replace(app, "helm: {valueFiles: [values-production.yaml]}", `helm: {valueFiles: [values-production.yaml], parameters: [{name: autoscaling.enabled, value: "false"}]}`, 1)
			h.create(doc, map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": fmt.Sprint(heal)})
			h.waitSynced(name, "")
			d := h.deployment(dest, "fraud-detection")
			before := d.DeepCopy()
			one := int32(1)
			d.Spec.Replicas = &one
			if err := h.c.Patch(context.Background(), d, client.MergeFrom(before)); err != nil {
				t.Fatal(err)
			}
			if heal {
				took := h.eventually(10*time.Second, "replicas back to 5", func() (bool, string) {
					d := h.deployment(dest, "fraud-detection")
					return *d.Spec.Replicas == 5, fmt.Sprint(*d.Spec.Replicas)
				})
				t.Logf("self-healed in %s", took.Round(10*time.Millisecond))
				return
			}
			h.eventually(10*time.Second, "OutOfSync", func() (bool, string) {
				return h.app(name).Status.Sync.Status == v1alpha1.SyncStatusOutOfSync, h.app(name).Status.Sync.Status
			})
			time.Sleep(2 * time.Second)
			if r := *h.deployment(dest, "fraud-detection").Spec.Replicas; r != 1 {
				t.Fatalf("selfHeal: false wrote replicas back to %d", r)
			}
		})
	}
}

func TestMissingProjectIsNotSynced(t *testing.T) {
	h := start(t, time.Minute)
	repo := gittest.New(t)
	repo.Write(map[string]string{"manifests/a.yaml": cm("orphan")}).Commit("a")
	doc := strings.Replace(dirApp, "project: default", "project: nope", 1)
	h.create(doc, map[string]string{"{{NAME}}": "noproj", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitCondition("noproj", v1alpha1.ConditionInvalidSpecError, "project nope which does not exist")
	if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: "orphan"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Fatalf("an app without project applied objects: %v", err)
	}
}

func TestAppOfApps(t *testing.T) {
	h := start(t, time.Minute)
	repo := gittest.New(t)
	child := strings.NewReplacer("{{NAME}}", "child", "{{DEST}}", h.ns, "{{PRUNE}}", "true", "{{NS}}", h.ns).Replace(dirApp)
	repo.Write(map[string]string{"apps/child.yaml": child, "manifests/a.yaml": cm("from-child")})
	repo.Write(map[string]string{"apps/child.yaml": strings.ReplaceAll(child, "{{REPO}}", repo.URL())})
	sha := repo.Commit("app of apps")
	root := strings.Replace(dirApp, "path: manifests", "path: apps", 1)
	h.create(root, map[string]string{"{{NAME}}": "root", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitSynced("child", sha)
	h.waitSynced("root", sha)
}

func TestEmptyRenderRefusesToPruneEverything(t *testing.T) {
	h := start(t, time.Minute)
	repo := gittest.New(t)
	repo.Write(map[string]string{"manifests/a.yaml": cm("keep-me")}).Commit("a")
	h.create(dirApp, map[string]string{"{{NAME}}": "empty", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitSynced("empty", "")
	repo.Remove("manifests/a.yaml").Write(map[string]string{"manifests/README.md": "nothing"}).Commit("empty")
	h.refresh("empty")
	h.waitCondition("empty", v1alpha1.ConditionSyncError, "refusing to prune all 1 resources")
	if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: "keep-me"}, &corev1.ConfigMap{}); err != nil {
		t.Fatalf("keep-me was pruned: %v", err)
	}
}

// A source that brings its own Namespace gets it before the objects in it,
// and the app's fresh objects are created together in one sync.
func TestNamespaceInSourceComesFirst(t *testing.T) {
	h := start(t, time.Minute)
	team := h.ns + "-team"
	h.namespaceGone(t, team)
	repo := gittest.New(t)
	files := map[string]string{"manifests/00-ns.yaml": fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", team)}
	for _, n := range []string{"a", "b", "c", "d"} {
		files["manifests/"+n+".yaml"] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: %s}\ndata: {k: v}\n", n, team)
	}
	sha := repo.Write(files).Commit("namespace and its objects")
	h.create(dirApp, map[string]string{"{{NAME}}": "own-ns", "{{REPO}}": repo.URL(), "{{DEST}}": team, "{{PRUNE}}": "true"})
	a := h.waitSynced("own-ns", sha)
	if len(a.Status.Resources) != 5 || a.Status.OperationState == nil || len(a.Status.OperationState.SyncResult.Resources) != 5 {
		t.Fatalf("resources %v, operation %+v", a.Status.Resources, a.Status.OperationState)
	}
	for _, n := range []string{"a", "b", "c", "d"} {
		if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: team, Name: n}, &corev1.ConfigMap{}); err != nil {
			t.Errorf("configmap %s: %v", n, err)
		}
	}
}

// A source that ships a CRD and an object of its kind syncs in one go: the
// CRD is applied and established first, then the object is created.
func TestCRDAndItsObjectInOneSource(t *testing.T) {
	h := start(t, time.Minute)
	group := strings.ReplaceAll(h.ns, "-", "") + ".mlcd.test"
	crd := fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servings.%[1]s}
spec:
  group: %[1]s
  names: {kind: Serving, plural: servings, singular: serving, listKind: ServingList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`, group)
	t.Cleanup(func() {
		obj := &unstructured.Unstructured{}
		obj.SetAPIVersion("apiextensions.k8s.io/v1")
		obj.SetKind("CustomResourceDefinition")
		obj.SetName("servings." + group)
		_ = h.c.Delete(context.Background(), obj)
	})
	repo := gittest.New(t)
	sha := repo.Write(map[string]string{
		"manifests/crd.yaml":     crd,
		"manifests/serving.yaml": fmt.Sprintf("apiVersion: %s/v1\nkind: Serving\nmetadata: {name: fraud}\nspec: {model: fraud-detection, version: v2.3.1}\n", group),
	}).Commit("crd and object")
	h.create(dirApp, map[string]string{"{{NAME}}": "crd-app", "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitSynced("crd-app", sha)
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(group + "/v1")
	obj.SetKind("Serving")
	if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: "fraud"}, obj); err != nil {
		t.Fatalf("the Serving object: %v", err)
	}
}
