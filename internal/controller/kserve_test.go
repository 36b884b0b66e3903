package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// installKServeCRD installs the committed KServe CRD once per cluster.
func installKServeCRD(h *harness) { installCRDs(h, "testdata/kserve-crd.yaml") }

// installCRDs installs the CRDs of a committed file (once per cluster) and
// waits until each is established.
func installCRDs(h *harness, file string) {
	h.t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict([]byte(doc), crd); err != nil {
			h.t.Fatal(err)
		}
		if err := h.c.Create(context.Background(), crd); err != nil && !apierrors.IsAlreadyExists(err) {
			h.t.Fatal(err)
		}
		h.eventually(30*time.Second, crd.Name+" established", func() (bool, string) {
			var live apiextensionsv1.CustomResourceDefinition
			if h.c.Get(context.Background(), types.NamespacedName{Name: crd.Name}, &live) != nil {
				return false, ""
			}
			for _, c := range live.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, ""
				}
			}
			return false, ""
		})
	}
}

// kserve plays KServe's part for one InferenceService: a revision per
// storageUri, traffic split by spec.predictor.canaryTrafficPercent
// between the latest revision and the last one rolled out, statuses as
// KServe writes them. It records every canaryTrafficPercent it sees.
type kserve struct {
	mu       sync.Mutex
	percents []int64
}

func (k *kserve) run(ctx context.Context, h *harness, ns, name string) {
	revisions := map[string]string{}
	rolledOut := ""
	for ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		o := &unstructured.Unstructured{}
		o.SetAPIVersion("serving.kserve.io/v1beta1")
		o.SetKind("InferenceService")
		if h.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, o) != nil {
			continue
		}
		uri, _, _ := unstructured.NestedString(o.Object, "spec", "predictor", "model", "storageUri")
		if revisions[uri] == "" {
			revisions[uri] = fmt.Sprintf("%s-predictor-%05d", name, len(revisions)+1)
		}
		latest := revisions[uri]
		pct, split, _ := unstructured.NestedInt64(o.Object, "spec", "predictor", "canaryTrafficPercent")
		k.mu.Lock()
		if split && (len(k.percents) == 0 || k.percents[len(k.percents)-1] != pct) {
			k.percents = append(k.percents, pct)
		}
		k.mu.Unlock()
		traffic := []any{map[string]any{"revisionName": latest, "percent": int64(100), "latestRevision": true}}
		if split && rolledOut != "" && rolledOut != latest && pct < 100 {
			traffic = []any{
				map[string]any{"revisionName": latest, "percent": pct, "latestRevision": true},
				map[string]any{"revisionName": rolledOut, "percent": 100 - pct, "latestRevision": false},
			}
		} else {
			rolledOut = latest
		}
		status := map[string]any{
			"observedGeneration": o.GetGeneration(),
			"conditions": []any{
				map[string]any{"type": "IngressReady", "status": "True"},
				map[string]any{"type": "PredictorReady", "status": "True"},
				map[string]any{"type": "Ready", "status": "True"},
				map[string]any{"type": "Stopped", "status": "False"},
			},
			"components":  map[string]any{"predictor": map[string]any{"latestReadyRevision": latest, "latestCreatedRevision": latest, "latestRolledoutRevision": rolledOut, "traffic": traffic}},
			"modelStatus": map[string]any{"transitionStatus": "UpToDate", "states": map[string]any{"activeModelState": "Loaded", "targetModelState": "Loaded"}},
		}
		if old, _, _ := unstructured.NestedMap(o.Object, "status"); equality.Semantic.DeepEqual(old, status) {
			continue
		}
		o.Object["status"] = status
		_ = h.c.Status().Update(ctx, o)
	}
}

func (k *kserve) seen() []int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.percents)
}

// TestKServeCanary: the steps drive spec.predictor.canaryTrafficPercent
// of a serverless InferenceService; the end removes it (KServe promotes
// the new revision); a failed analysis sets it to 0 and then restores the
// previous spec.
func TestKServeCanary(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startOpts(t, controller.Options{PollInterval: time.Minute, Registry: reg.Client})
	installKServeCRD(h)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"ok": false}`) }))
	defer failing.Close()
	dest := h.ns + "-kserve"
	repo := gittest.New(t)
	values := func(v string) string { return "model:\n  version: " + v + "\n" }
	repo.Write(map[string]string{
		"models/ranker/Chart.yaml":             "apiVersion: v2\nname: ranker\nversion: 0.1.0\n",
		"models/ranker/values.yaml":            values("v1"),
		"models/ranker/values-production.yaml": values("v1"),
		"models/ranker/templates/isvc.yaml": `apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: ranker
spec:
  predictor:
    model:
      modelFormat: {name: sklearn}
      storageUri: "gs://models/ranker/{{ .Values.model.version }}"
`,
		"models/ranker/templates/analysis.yaml": `apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: quality}
spec:
  metrics:
  - name: quality
    successCondition: result == true
    provider: {web: {url: "` + failing.URL + `", jsonPath: "{$.ok}"}}
`,
		"models/ranker/mlcd.yaml": `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: ranker}
spec:
  registeredModel: ranker
  environments:
  - {name: production, valuesFile: values-production.yaml, application: ranker}
  rollout:
    production:
      onFailure: abort
      canary:
        steps:
        - setWeight: 10
        - pause: {duration: 1s}
        - setWeight: 50
        - pause: {duration: 1s}
`,
	}).Commit("ranker v1")
	for _, v := range []string{"v1", "v2", "v3"} {
		registrytest.Register(t, reg.Client, "ranker", v, nil)
	}
	h.namespaceGone(t, dest)
	h.create(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: ranker, namespace: {{NS}}}
spec:
  project: default
  source: {repoURL: {{REPO}}, targetRevision: main, path: models/ranker, helm: {valueFiles: [values-production.yaml]}}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy: {automated: {prune: true, selfHeal: false}, syncOptions: [CreateNamespace=true]}
`, map[string]string{"{{REPO}}": repo.URL(), "{{DEST}}": dest})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ks := &kserve{}
	go ks.run(ctx, h, dest, "ranker")
	h.waitSynced("ranker", "")

	isvc := func() *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion("serving.kserve.io/v1beta1")
		o.SetKind("InferenceService")
		if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: dest, Name: "ranker"}, o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	v2 := repo.Write(map[string]string{"models/ranker/values-production.yaml": values("v2")}).Commit("ranker v2")
	h.refresh("ranker")
	h.eventually(60*time.Second, "v2 promoted by KServe", func() (bool, string) {
		o := isvc()
		uri, _, _ := unstructured.NestedString(o.Object, "spec", "predictor", "model", "storageUri")
		_, split, _ := unstructured.NestedInt64(o.Object, "spec", "predictor", "canaryTrafficPercent")
		return strings.HasSuffix(uri, "/v2") && !split, fmt.Sprintf("%s split=%v seen=%v", uri, split, ks.seen())
	})
	h.waitSynced("ranker", v2)
	if got := ks.seen(); !slices.Equal(got, []int64{0, 10, 50}) && !slices.Equal(got, []int64{10, 50}) {
		t.Errorf("canaryTrafficPercent went %v; want 10 then 50", got)
	}

	// v3 fails its analysis at 10 %: the share goes to 0, then the v2 spec.
	repo.Write(map[string]string{
		"models/ranker/values-production.yaml": values("v3"),
		"models/ranker/mlcd.yaml":              strings.Replace(string(must(os.ReadFile(repo.Dir+"/models/ranker/mlcd.yaml"))), "        - pause: {duration: 1s}\n        - setWeight: 50", "        - analysis: {templates: [{templateName: quality}]}\n        - setWeight: 50", 1),
	}).Commit("ranker v3")
	ks.mu.Lock()
	ks.percents = nil
	ks.mu.Unlock()
	h.refresh("ranker")
	h.eventually(60*time.Second, "v3 aborted, v2 spec restored", func() (bool, string) {
		o := isvc()
		uri, _, _ := unstructured.NestedString(o.Object, "spec", "predictor", "model", "storageUri")
		_, split, _ := unstructured.NestedInt64(o.Object, "spec", "predictor", "canaryTrafficPercent")
		mr := h.rollout("ranker")
		return mr != nil && mr.Status.Phase == "Degraded" && strings.HasSuffix(uri, "/v2") && !split, fmt.Sprintf("%s split=%v seen=%v", uri, split, ks.seen())
	})
	if got := ks.seen(); len(got) < 2 || got[len(got)-1] != 0 || !slices.Contains(got, 10) {
		t.Errorf("canaryTrafficPercent during the abort went %v; want 10 … then 0", got)
	}
	if o := isvc(); o.GetAnnotations()[v1alpha1.AnnotationModelVersion] != "v2" {
		t.Errorf("restored InferenceService says version %s", o.GetAnnotations()[v1alpha1.AnnotationModelVersion])
	}
	if st := h.app("ranker").Status; st.Health.Status != v1alpha1.HealthDegraded || !strings.Contains(fmt.Sprint(st.Conditions), "metric quality failed") {
		t.Errorf("app after the abort: %s %v", st.Health.Status, st.Conditions)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
