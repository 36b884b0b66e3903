package controller_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source"
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
