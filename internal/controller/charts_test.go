package controller_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	helmregistry "helm.sh/helm/v4/pkg/registry"

	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// chartRepo serves a Helm repository over HTTP: the example's
// fraud-detection chart packaged at each version, and index.yaml.
func chartRepo(t *testing.T, versions ...string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "fraud-detection")
	if err := source.CopyFS(os.DirFS("../../examples"), "ml-deployments/models/fraud-detection", src, nil); err != nil {
		t.Fatal(err)
	}
	vendorModelServer(t, src)
	os.Remove(filepath.Join(src, "mlcd.yaml")) // the model policy lives in Git, not in the chart
	var index strings.Builder
	index.WriteString("apiVersion: v1\nentries:\n  fraud-detection:\n")
	for _, v := range versions {
		c, err := chartloader.Load(src)
		if err != nil {
			t.Fatal(err)
		}
		c.Metadata.Version = v
		archive, err := chartutil.Save(c, dir)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(archive)
		sum := sha256.Sum256(data)
		fmt.Fprintf(&index, "  - {name: fraud-detection, version: %q, apiVersion: v2, urls: [%s], digest: %s}\n", v, filepath.Base(archive), hex.EncodeToString(sum[:]))
	}
	os.WriteFile(filepath.Join(dir, "index.yaml"), []byte(index.String()), 0o644)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestChartFromRepository: source.chart from a Helm repository served by
// the test syncs the newest version the range allows, with a values file
// of the chart; a version the repository lacks is a condition and prunes
// nothing.
func TestChartFromRepository(t *testing.T) {
	h := start(t, time.Minute)
	repoURL := chartRepo(t, "0.1.0", "0.1.3", "0.2.0")
	dest := h.ns + "-chart"
	h.namespaceGone(t, dest)
	doc := `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: charted, namespace: {{NS}}}
spec:
  project: default
  source:
    repoURL: {{REPO}}
    chart: fraud-detection
    targetRevision: "{{VERSION}}"
    helm: {valueFiles: [values-production.yaml], parameters: [{name: autoscaling.enabled, value: "false"}]}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`
	h.create(doc, map[string]string{"{{REPO}}": repoURL, "{{DEST}}": dest, "{{VERSION}}": "~0.1.0"})
	a := h.waitSynced("charted", "0.1.3")
	if a.Status.SourceType != "Helm" || len(a.Status.History) != 1 || a.Status.History[0].Revision != "0.1.3" {
		t.Errorf("status: type %s history %+v", a.Status.SourceType, a.Status.History)
	}
	d := h.deployment(dest, "fraud-detection")
	if d == nil || *d.Spec.Replicas != 5 || !strings.HasSuffix(image(d), ":v2.3.1") {
		t.Fatalf("deployment from the chart's values-production.yaml: %+v", d)
	}

	// A version the repository does not have: a condition, nothing pruned.
	h.patchApp("charted", func(a *v1alpha1.Application) { a.Spec.Source.TargetRevision = "9.9.9" })
	h.waitCondition("charted", v1alpha1.ConditionComparisonError, "fraud-detection 9.9.9")
	if st := h.app("charted").Status; st.Sync.Status != v1alpha1.SyncStatusUnknown {
		t.Errorf("sync %s with a missing chart version", st.Sync.Status)
	}
	if h.deployment(dest, "fraud-detection") == nil {
		t.Fatal("a missing chart version pruned what runs")
	}
}

// TestMultiSource: a chart from a Helm repository with its values file
// from a Git source by `$values` (Argo CD's multi-source app); both
// revisions are recorded; a commit to the values moves the app; the
// model gate reads the version from those values.
func TestMultiSource(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startWith(t, time.Minute, reg.Client)
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95})
	chartURL := chartRepo(t, "0.1.0")
	values := gittest.New(t)
	sha := values.Write(map[string]string{"models/fraud-detection/values-production.yaml": "model:\n  version: v2.3.1\n  replicas: 3\nautoscaling:\n  enabled: false\n"}).Commit("values")
	h.create(`apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection, namespace: {{NS}}}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: production, valuesFile: values-production.yaml, application: multi}
`, nil)
	dest := h.ns + "-multi"
	h.namespaceGone(t, dest)
	h.create(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: multi, namespace: {{NS}}}
spec:
  project: default
  sources:
  - repoURL: {{CHARTS}}
    chart: fraud-detection
    targetRevision: 0.1.0
    helm: {valueFiles: [$values/models/fraud-detection/values-production.yaml]}
  - repoURL: {{VALUES}}
    targetRevision: main
    ref: values
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`, map[string]string{"{{CHARTS}}": chartURL, "{{VALUES}}": values.URL(), "{{DEST}}": dest})
	a := h.waitSynced("multi", "0.1.0,"+sha)
	if !slices.Equal(a.Status.Sync.Revisions, []string{"0.1.0", sha}) || len(a.Status.History) != 1 || !slices.Equal(a.Status.History[0].Revisions, []string{"0.1.0", sha}) {
		t.Errorf("revisions %v, history %+v", a.Status.Sync.Revisions, a.Status.History)
	}
	if d := h.deployment(dest, "fraud-detection"); d == nil || *d.Spec.Replicas != 3 || !strings.HasSuffix(image(d), ":v2.3.1") {
		t.Fatalf("deployment from the Git values: %+v", d)
	}
	if v := a.Annotations[v1alpha1.AppAnnotationVersion]; v != "v2.3.1" {
		t.Errorf("governed version %q", v)
	}
	// A commit to the values repository moves the app.
	next := values.Write(map[string]string{"models/fraud-detection/values-production.yaml": "model:\n  version: v2.3.1\n  replicas: 4\nautoscaling:\n  enabled: false\n"}).Commit("4 replicas")
	h.refresh("multi")
	h.waitSynced("multi", "0.1.0,"+next)
	h.eventually(30*time.Second, "4 replicas", func() (bool, string) {
		d := h.deployment(dest, "fraud-detection")
		return d != nil && *d.Spec.Replicas == 4, ""
	})
	// The gate reads the version the Git values name.
	values.Write(map[string]string{"models/fraud-detection/values-production.yaml": "model:\n  version: v2.3.9\n  replicas: 4\nautoscaling:\n  enabled: false\n"}).Commit("v2.3.9, not registered")
	h.refresh("multi")
	h.waitCondition("multi", v1alpha1.ConditionModelGate, "has no version v2.3.9")
}

// TestChartDependencyFromRepository: a chart in Git whose Chart.yaml
// depends on a chart of a Helm repository (a semver range) renders with
// the dependency fetched as `helm dependency build` would; a dependency
// version the repository lacks is a condition that prunes nothing.
func TestChartDependencyFromRepository(t *testing.T) {
	h := start(t, time.Minute)
	chartURL := chartRepo(t, "0.1.0", "0.1.3")
	repo := gittest.New(t)
	chart := func(constraint string) map[string]string {
		return map[string]string{
			"serving/Chart.yaml":          fmt.Sprintf("apiVersion: v2\nname: serving\nversion: 1.0.0\ndependencies:\n- {name: fraud-detection, version: %q, repository: %s}\n", constraint, chartURL),
			"serving/values.yaml":         "fraud-detection:\n  model: {version: v2.3.1, replicas: 2}\n  autoscaling: {enabled: false}\n",
			"serving/templates/note.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: serving-note}\ndata: {dependency: '{{ (index .Subcharts \"fraud-detection\").Chart.Version }}'}\n",
		}
	}
	sha := repo.Write(chart("~0.1.0")).Commit("umbrella chart")
	dest := h.ns + "-umbrella"
	h.namespaceGone(t, dest)
	h.create(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: umbrella, namespace: {{NS}}}
spec:
  project: default
  source: {repoURL: {{REPO}}, targetRevision: main, path: serving}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`, map[string]string{"{{REPO}}": repo.URL(), "{{DEST}}": dest})
	h.waitSynced("umbrella", sha)
	d := h.deployment(dest, "fraud-detection")
	if d == nil || *d.Spec.Replicas != 2 {
		t.Fatalf("the dependency's Deployment with the parent's values: %+v", d)
	}

	// A dependency version the repository lacks: a condition, nothing pruned.
	sha2 := repo.Write(chart("9.9.9")).Commit("missing dependency version")
	h.refresh("umbrella")
	h.waitCondition("umbrella", v1alpha1.ConditionComparisonError, "dependency fraud-detection 9.9.9")
	if st := h.app("umbrella").Status; st.Sync.Status == v1alpha1.SyncStatusSynced || st.Sync.Revision == sha2 {
		t.Errorf("sync %s at %s with a missing dependency", st.Sync.Status, shortSHA(st.Sync.Revision))
	}
	if h.deployment(dest, "fraud-detection") == nil {
		t.Fatal("a missing dependency pruned what runs")
	}
}

// TestChartFromOCIRegistry: source.chart from an OCI registry (an
// in-memory registry on loopback, the chart pushed with Helm's registry
// client) syncs the version the range names.
func TestChartFromOCIRegistry(t *testing.T) {
	h := start(t, time.Minute)
	srv := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	rc, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "c.json")))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "fraud-detection")
	if err := source.CopyFS(os.DirFS("../../examples"), "ml-deployments/models/fraud-detection", src, nil); err != nil {
		t.Fatal(err)
	}
	vendorModelServer(t, src)
	os.Remove(filepath.Join(src, "mlcd.yaml"))
	for _, v := range []string{"0.1.0", "0.1.2"} {
		c, err := chartloader.Load(src)
		if err != nil {
			t.Fatal(err)
		}
		c.Metadata.Version = v
		archive, err := chartutil.Save(c, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(archive)
		if _, err := rc.Push(data, host+"/charts/fraud-detection:"+v); err != nil {
			t.Fatal(err)
		}
	}
	dest := h.ns + "-oci"
	h.namespaceGone(t, dest)
	h.create(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: oci, namespace: {{NS}}}
spec:
  project: default
  source:
    repoURL: oci://{{HOST}}/charts
    chart: fraud-detection
    targetRevision: 0.1.*
    helm: {valueFiles: [values-production.yaml], parameters: [{name: autoscaling.enabled, value: "false"}]}
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`, map[string]string{"{{HOST}}": host, "{{DEST}}": dest})
	h.waitSynced("oci", "0.1.2")
	if d := h.deployment(dest, "fraud-detection"); d == nil || *d.Spec.Replicas != 5 {
		t.Fatalf("deployment from the OCI chart: %+v", d)
	}
}

// vendorModelServer puts the shared model-server library chart into the
// chart's charts/ (as `helm dependency build` would before packaging).
func vendorModelServer(t *testing.T, chartDir string) {
	t.Helper()
	if err := source.CopyFS(os.DirFS("../../examples"), "ml-deployments/base/model-server", filepath.Join(chartDir, "charts", "model-server"), nil); err != nil {
		t.Fatal(err)
	}
}
