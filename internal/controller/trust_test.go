package controller_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/internal/metrics"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

func (h *harness) configMapExists(ns, name string) bool {
	err := h.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &corev1.ConfigMap{})
	if err != nil && !apierrors.IsNotFound(err) {
		h.t.Fatal(err)
	}
	return err == nil
}

// tenantApp is an Application of a directory of ConfigMaps in namespace
// {{APPNS}}.
const tenantApp = `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: {{NAME}}, namespace: {{APPNS}}}
spec:
  project: {{PROJECT}}
  source: {repoURL: {{REPO}}, targetRevision: main, path: manifests}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
`

// TestTenancy: Applications outside the control-plane namespace are
// reconciled only when their project lists their namespace; projects and
// signing keys come only from the control-plane namespace.
func TestTenancy(t *testing.T) {
	env := clustertest.Get(t)
	tenant := env.Namespace(t)
	h := startOpts(t, controller.Options{PollInterval: time.Minute, AppNamespaces: []string{tenant[:len(tenant)-2] + "*"}})
	repo := gittest.New(t)
	repo.Write(map[string]string{"manifests/a.yaml": cm("tenant-cm")})
	repo.Commit("one ConfigMap")
	proj := func(name, ns, extra string) {
		h.create(fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: %s, namespace: %s}
spec:
  sourceRepos: ["*"]
  destinations: [{server: "*", namespace: "*"}]
%s`, name, ns, extra), nil)
	}
	create := func(name, project, dest string) {
		h.create(tenantApp, map[string]string{"{{NAME}}": name, "{{APPNS}}": tenant, "{{PROJECT}}": project, "{{REPO}}": repo.URL(), "{{DEST}}": dest})
	}
	get := func(name string) *v1alpha1.Application {
		a := &v1alpha1.Application{}
		if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: tenant, Name: name}, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	waitCond := func(name, contains string) {
		h.eventually(30*time.Second, name+" refused", func() (bool, string) {
			a := get(name)
			for _, c := range a.Status.Conditions {
				if c.Type == v1alpha1.ConditionInvalidSpecError && strings.Contains(c.Message, contains) {
					return a.Status.Sync.Status != v1alpha1.SyncStatusSynced, ""
				}
			}
			return false, fmt.Sprintf("%s %v", a.Status.Sync.Status, a.Status.Conditions)
		})
	}

	// The default project does not list the tenant namespace.
	dNotListed := tenant + "-d1"
	h.namespaceGone(t, dNotListed)
	create("not-listed", "default", dNotListed)
	waitCond("not-listed", "not permitted to use project 'default'")

	// A project that exists only in the tenant's namespace is not one.
	proj("own", tenant, "  sourceNamespaces: [\"*\"]\n")
	create("own-project", "own", tenant)
	waitCond("own-project", "project own which does not exist")

	// A project in the control-plane namespace that lists it: synced.
	proj("tenants", h.ns, fmt.Sprintf("  sourceNamespaces: [%q]\n", tenant))
	create("listed", "tenants", tenant)
	h.eventually(30*time.Second, "listed app synced", func() (bool, string) {
		a := get("listed")
		return a.Status.Sync.Status == v1alpha1.SyncStatusSynced && h.configMapExists(tenant, "tenant-cm"), a.Status.Sync.Status
	})

	// Signed commits: a tenant's own key ConfigMap does not count.
	proj("signed", h.ns, fmt.Sprintf("  sourceNamespaces: [%q]\n  signatureKeys: [{keyID: ABCDEF0123456789}]\n", tenant))
	key := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.GPGKeysConfigMap, Namespace: tenant}, Data: map[string]string{"ABCDEF0123456789": "tenant key"}}
	if err := h.c.Create(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	dSigned := tenant + "-s1"
	h.namespaceGone(t, dSigned)
	create("signed", "signed", dSigned)
	h.eventually(30*time.Second, "unsigned tenant app refused", func() (bool, string) {
		a := get("signed")
		for _, c := range a.Status.Conditions {
			if strings.Contains(c.Message, "requires signed commits") {
				return true, ""
			}
		}
		return false, fmt.Sprint(a.Status.Conditions)
	})
	for _, ns := range []string{dNotListed, dSigned} {
		if h.configMapExists(ns, "tenant-cm") {
			t.Errorf("a refused app applied tenant-cm in %s", ns)
		}
	}
}

// TestProjectRules: each AppProject rule allows one app and denies
// another, which applies nothing and names the rule.
func TestProjectRules(t *testing.T) {
	h := start(t, time.Minute)
	repo := gittest.New(t)
	repo.Write(map[string]string{
		"manifests/cm.yaml":     cm("rules-cm"),
		"clusterwide/ns.yaml":   "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + h.ns + "-rules}\n",
		"clusterwide/cm.yaml":   cm("rules-cluster-cm"),
		"withsecret/cm.yaml":    cm("rules-secret-cm"),
		"withsecret/sec.yaml":   "apiVersion: v1\nkind: Secret\nmetadata: {name: rules-secret}\nstringData: {k: v}\n",
		"othernamespace/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rules-other, namespace: kube-public}\n",
	})
	repo.Commit("rules")
	h.namespaceGone(t, h.ns+"-rules")
	cases := []struct {
		name, spec, path, dest string
		denied                 string // "" = allowed
		object                 string // a ConfigMap the app applies
	}{
		{"repo-allowed", `sourceRepos: ["file://*"]`, "manifests", h.ns, "", "rules-cm"},
		{"repo-denied", `sourceRepos: ["*", "!` + repo.URL() + `"]`, "manifests", h.ns, "spec.sourceRepos", "rules-cm"},
		{"dest-allowed", `destinations: [{server: "*", namespace: "` + h.ns[:4] + `*"}]`, "manifests", h.ns, "", "rules-cm"},
		{"dest-denied", `destinations: [{server: "*", namespace: "*"}, {server: "*", namespace: "!` + h.ns + `"}]`, "manifests", h.ns, "is denied", "rules-cm"},
		{"cluster-allowed", `clusterResourceWhitelist: [{group: "", kind: Namespace}]`, "clusterwide", h.ns, "", "rules-cluster-cm"},
		{"cluster-not-whitelisted", `clusterResourceWhitelist: [{group: rbac.authorization.k8s.io, kind: "*"}]`, "clusterwide", h.ns, "not in spec.clusterResourceWhitelist", "rules-cluster-cm"},
		{"cluster-blacklisted", "clusterResourceWhitelist: [{group: \"*\", kind: \"*\"}]\n  clusterResourceBlacklist: [{group: \"\", kind: Namespace}]", "clusterwide", h.ns, "spec.clusterResourceBlacklist", "rules-cluster-cm"},
		{"ns-whitelist-allowed", `namespaceResourceWhitelist: [{group: "", kind: ConfigMap}, {group: "", kind: Secret}]`, "withsecret", h.ns, "", "rules-secret-cm"},
		{"ns-whitelist-denied", `namespaceResourceWhitelist: [{group: "", kind: ConfigMap}]`, "withsecret", h.ns, "not in spec.namespaceResourceWhitelist", "rules-secret-cm"},
		{"ns-blacklist-denied", `namespaceResourceBlacklist: [{group: "", kind: Secret}]`, "withsecret", h.ns, "spec.namespaceResourceBlacklist", "rules-secret-cm"},
		{"object-namespace-denied", `destinations: [{server: "*", namespace: "` + h.ns + `"}]`, "othernamespace", h.ns, "spec.destinations", "rules-other"},
	}
	// One at a time: allowed apps of the same path apply the same objects.
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defaults := map[string]string{
				"sourceRepos":  `sourceRepos: ["*"]`,
				"destinations": `destinations: [{server: "*", namespace: "*"}]`,
			}
			spec := c.spec
			for k, v := range defaults {
				if !strings.Contains(spec, k+":") {
					spec += "\n  " + v
				}
			}
			h.create(fmt.Sprintf("apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: %s, namespace: {{NS}}}\nspec:\n  %s\n", c.name, spec), nil)
			doc := strings.NewReplacer("project: default", "project: "+c.name, "path: manifests", "path: "+c.path).Replace(dirApp)
			h.create(doc, map[string]string{"{{NAME}}": c.name, "{{REPO}}": repo.URL(), "{{DEST}}": c.dest, "{{PRUNE}}": "true"})
			ns := h.ns
			if c.object == "rules-other" {
				ns = "kube-public"
			}
			if c.denied == "" {
				h.waitSynced(c.name, "")
				if !h.configMapExists(ns, c.object) {
					t.Fatalf("allowed app did not apply %s", c.object)
				}
			} else {
				h.waitCondition(c.name, v1alpha1.ConditionInvalidSpecError, c.denied)
				if st := h.app(c.name).Status.Sync.Status; st == v1alpha1.SyncStatusSynced {
					t.Errorf("denied app shows %s", st)
				}
				cm := &corev1.ConfigMap{}
				if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: c.object}, cm); err == nil && cm.Annotations["mlcd.io/application"] == h.ns+"/"+c.name {
					t.Fatalf("denied app applied %s", c.object)
				}
			}
			// Leave nothing for the next case; the app's finalizer-less
			// deletion keeps objects, so delete them by hand.
			// A reconcile that started before the app was gone may apply
			// the object once more (a non-cascading delete keeps
			// resources anyway): delete until it stays gone.
			_ = h.c.Delete(context.Background(), h.app(c.name))
			h.eventually(30*time.Second, "cleaned up", func() (bool, string) {
				_ = h.c.Delete(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: c.object, Namespace: ns}})
				time.Sleep(200 * time.Millisecond)
				return !h.configMapExists(ns, c.object), ""
			})
		})
	}
}

// hpaApp is the example chart with its HPA (autoscaling on).
const hpaApp = `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: {{NAME}}, namespace: {{NS}}}
spec:
  project: default
  source:
    repoURL: {{REPO}}
    targetRevision: main
    path: models/fraud-detection
    helm:
      valueFiles: [values-staging.yaml]
      parameters: [{name: autoscaling.enabled, value: "{{AUTOSCALE}}"}, {name: autoscaling.minReplicas, value: "2"}, {name: model.replicas, value: "2"}]
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`

// TestAutoscalerIsNotFought: a workload that the app's HPA scales stays
// at the replicas another field manager set through the scale
// subresource, with selfHeal on; without an HPA a scale is reverted.
func TestAutoscalerIsNotFought(t *testing.T) {
	h := start(t, time.Minute)
	for _, autoscale := range []bool{true, false} {
		t.Run(fmt.Sprint("hpa=", autoscale), func(t *testing.T) {
			repo := modelRepo(t)
			name := fmt.Sprintf("scaled-%v", autoscale)
			dest := h.ns + "-" + name
			h.namespaceGone(t, dest)
			h.create(hpaApp, map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{AUTOSCALE}}": fmt.Sprint(autoscale)})
			h.waitSynced(name, "")
			h.eventually(60*time.Second, "2 replicas", func() (bool, string) {
				d := h.deployment(dest, "fraud-detection")
				return d != nil && *d.Spec.Replicas == 2, fmt.Sprint(d.Spec.Replicas)
			})
			d := h.deployment(dest, "fraud-detection")
			scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: dest}, Spec: autoscalingv1.ScaleSpec{Replicas: 4}}
			if err := h.c.SubResource("scale").Update(context.Background(), d, client.WithSubResourceBody(scale), client.FieldOwner("test-autoscaler")); err != nil {
				t.Fatal(err)
			}
			if !autoscale {
				h.eventually(10*time.Second, "replicas reverted to 2", func() (bool, string) {
					d := h.deployment(dest, "fraud-detection")
					return *d.Spec.Replicas == 2, fmt.Sprint(*d.Spec.Replicas)
				})
				return
			}
			h.refresh(name)
			time.Sleep(3 * time.Second)
			if r := *h.deployment(dest, "fraud-detection").Spec.Replicas; r != 4 {
				t.Fatalf("replicas = %d, want 4 as the autoscaler set them", r)
			}
			if st := h.app(name).Status; st.Sync.Status != v1alpha1.SyncStatusSynced {
				t.Errorf("sync = %s, want Synced (replicas of an autoscaled workload are not compared)", st.Sync.Status)
			}
		})
	}
}

const ignoreApp = `
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: {{NAME}}, namespace: {{NS}}}
spec:
  project: default
  source: {repoURL: {{REPO}}, targetRevision: main, path: manifests}
  destination: {server: https://kubernetes.default.svc, namespace: {{NS}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
  ignoreDifferences:
  - {kind: ConfigMap, name: ignored, jsonPointers: [/data/pointer]}
  - {kind: ConfigMap, name: ignored, jqPathExpressions: ['.data | .[keys[] | select(startswith("jq-"))]']}
`

// TestIgnoreDifferences: fields named by a JSON pointer or a jq
// expression are neither compared nor reverted; others are.
func TestIgnoreDifferences(t *testing.T) {
	h := start(t, time.Minute)
	repo := gittest.New(t)
	repo.Write(map[string]string{"manifests/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\ndata: {pointer: git, jq-a: git, other: git}\n"})
	repo.Commit("cm")
	h.create(ignoreApp, map[string]string{"{{NAME}}": "ignore", "{{REPO}}": repo.URL()})
	h.waitSynced("ignore", "")
	get := func() *corev1.ConfigMap {
		c := &corev1.ConfigMap{}
		if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: "ignored"}, c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := get()
	before := c.DeepCopy()
	c.Data["pointer"], c.Data["jq-a"] = "changed", "changed"
	if err := h.c.Patch(context.Background(), c, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	h.refresh("ignore")
	time.Sleep(2 * time.Second)
	if c := get(); c.Data["pointer"] != "changed" || c.Data["jq-a"] != "changed" {
		t.Fatalf("ignored fields reverted: %v", c.Data)
	}
	if st := h.app("ignore").Status.Sync.Status; st != v1alpha1.SyncStatusSynced {
		t.Errorf("sync = %s over ignored differences", st)
	}
	c = get()
	before = c.DeepCopy()
	c.Data["other"] = "changed"
	if err := h.c.Patch(context.Background(), c, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	h.eventually(10*time.Second, "other field reverted", func() (bool, string) { return get().Data["other"] == "git", get().Data["other"] })
}

// TestDeletionFinalizer: deleting an app with the resources finalizer
// deletes its resources (only those it still owns); without, they stay.
func TestDeletionFinalizer(t *testing.T) {
	h := start(t, time.Minute)
	for _, fin := range []string{"", v1alpha1.ResourcesFinalizer, v1alpha1.ResourcesFinalizerBackground} {
		name := "fin-" + strings.NewReplacer(".", "-", "/", "-").Replace(fin)
		if fin == "" {
			name = "fin-none"
		}
		if len(name) > 40 {
			name = name[:20] + name[len(name)-10:]
		}
		t.Run(name, func(t *testing.T) {
			repo := gittest.New(t)
			repo.Write(map[string]string{"manifests/a.yaml": cm(name + "-a"), "manifests/b.yaml": cm(name + "-b")})
			repo.Commit("two")
			doc := dirApp
			if fin != "" {
				doc = strings.Replace(doc, "namespace: {{NS}}}", "namespace: {{NS}}, finalizers: ["+fin+"]}", 1)
			}
			h.create(doc, map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
			h.waitSynced(name, "")
			// b is taken over by someone else: it must survive.
			b := &corev1.ConfigMap{}
			if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: name + "-b"}, b); err != nil {
				t.Fatal(err)
			}
			// Stop the app first so it does not re-stamp b.
			h.patchApp(name, func(a *v1alpha1.Application) { a.Spec.SyncPolicy = nil })
			time.Sleep(500 * time.Millisecond)
			before := b.DeepCopy()
			b.Annotations["mlcd.io/application"] = "someone/else"
			if err := h.c.Patch(context.Background(), b, client.MergeFrom(before)); err != nil {
				t.Fatal(err)
			}
			if err := h.c.Delete(context.Background(), h.app(name)); err != nil {
				t.Fatal(err)
			}
			h.eventually(30*time.Second, "app gone", func() (bool, string) {
				err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: name}, &v1alpha1.Application{})
				return apierrors.IsNotFound(err), fmt.Sprint(err)
			})
			if fin == "" {
				time.Sleep(time.Second)
				if !h.configMapExists(h.ns, name+"-a") {
					t.Fatal("an app deleted without the finalizer deleted its resources")
				}
			} else {
				h.eventually(30*time.Second, "resources deleted", func() (bool, string) { return !h.configMapExists(h.ns, name+"-a"), "" })
			}
			if !h.configMapExists(h.ns, name+"-b") {
				t.Fatal("an object the app no longer owns was deleted")
			}
		})
	}
}

// recorder keeps the outcomes of one app's reconciles.
type recorder struct {
	mu    sync.Mutex
	app   string
	times []time.Time
	errs  []error
}

func (r *recorder) Reconciled(app *v1alpha1.Application, o metrics.Outcome) {
	if app.Name != r.app {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times = append(r.times, time.Now())
	r.errs = append(r.errs, o.Err)
}

// TestTransientFailureBacksOff: an unreachable repository is returned to
// controller-runtime as an error, so retries back off exponentially, and
// an Event says why.
func TestTransientFailureBacksOff(t *testing.T) {
	rec := &recorder{app: "unreachable"}
	h := startOpts(t, controller.Options{PollInterval: time.Minute, Recorder: rec})
	doc := strings.Replace(dirApp, "repoURL: {{REPO}}", "repoURL: http://127.0.0.1:1/nowhere.git", 1)
	h.create(doc, map[string]string{"{{NAME}}": "unreachable", "{{DEST}}": h.ns, "{{PRUNE}}": "true"})
	h.waitEvent("unreachable", v1alpha1.ConditionComparisonError, "nowhere")
	h.eventually(20*time.Second, "five failed reconciles", func() (bool, string) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.times) >= 5, fmt.Sprint(len(rec.times))
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, err := range rec.errs[:5] {
		if err == nil {
			t.Fatal("a failed reconcile was not returned as an error")
		}
	}
	var gaps []time.Duration
	for i := 1; i < 5; i++ {
		gaps = append(gaps, rec.times[i].Sub(rec.times[i-1]))
	}
	// 0.5 s, 1 s, 2 s, 4 s: each wait at least 1.5x the one before.
	for i := 2; i < len(gaps); i++ {
		if gaps[i] < gaps[i-1]*3/2 {
			t.Errorf("requeue delays do not grow: %v", gaps)
		}
	}
	if st := h.app("unreachable").Status.Sync.Status; st != v1alpha1.SyncStatusUnknown {
		t.Errorf("sync = %s, want Unknown", st)
	}
}

// TestTenantApplicationSetIgnored: an ApplicationSet in a namespace whose
// Applications are reconciled (--app-namespaces) is not reconciled unless
// --applicationset-namespaces names it: it would read repositories and
// create Applications with the controller's rights. Opted in, it is.
func TestTenantApplicationSetIgnored(t *testing.T) {
	env := clustertest.Get(t)
	tenant := env.Namespace(t)
	glob := tenant[:len(tenant)-2] + "*"
	repo := gittest.New(t)
	repo.Write(map[string]string{"manifests/a.yaml": cm("set-cm")}).Commit("one ConfigMap")
	set := `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: tenant-set, namespace: ` + tenant + `}
spec:
  generators: [{list: {elements: [{suffix: one}]}}]
  template:
    metadata: {name: "gen-{{suffix}}"}
    spec:
      project: default
      source: {repoURL: ` + repo.URL() + `, targetRevision: main, path: manifests}
      destination: {server: https://kubernetes.default.svc, namespace: ` + tenant + `}
`
	for _, optIn := range []bool{false, true} {
		o := controller.Options{PollInterval: time.Minute, AppNamespaces: []string{glob}}
		if optIn {
			o.AppSetNamespaces = []string{glob}
		}
		h := startOpts(t, o)
		obj := &v1alpha1.ApplicationSet{}
		if err := yaml.Unmarshal([]byte(set), obj); err != nil {
			t.Fatal(err)
		}
		if err := h.c.Create(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
		gen := func() bool {
			return h.c.Get(context.Background(), types.NamespacedName{Namespace: tenant, Name: "gen-one"}, &v1alpha1.Application{}) == nil
		}
		if optIn {
			h.eventually(30*time.Second, "the opted-in set generates", func() (bool, string) {
				cur := &v1alpha1.ApplicationSet{}
				_ = h.c.Get(context.Background(), types.NamespacedName{Namespace: tenant, Name: "tenant-set"}, cur)
				return gen(), fmt.Sprint(cur.Status.Conditions)
			})
		} else {
			time.Sleep(3 * time.Second)
			if gen() {
				t.Fatal("a tenant's ApplicationSet was reconciled without --applicationset-namespaces")
			}
		}
		if optIn {
			return
		}
		h.stop()
		h.stop = func() {}
		_ = h.c.Delete(context.Background(), obj)
		h.eventually(10*time.Second, "set gone", func() (bool, string) {
			return h.c.Get(context.Background(), types.NamespacedName{Namespace: tenant, Name: "tenant-set"}, &v1alpha1.ApplicationSet{}) != nil, ""
		})
	}
}
