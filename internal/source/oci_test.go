package source_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v4/pkg/chart/common"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/registry"

	"github.com/mlcd-dev/mlcd/internal/source"
)

// ociRegistry runs an in-memory OCI registry on loopback holding the
// chart "serving" at each version; it returns oci://host/charts.
func ociRegistry(t *testing.T, versions ...string) string {
	t.Helper()
	srv := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	rc, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "c.json")))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		c := &chartv2.Chart{
			Metadata:  &chartv2.Metadata{APIVersion: "v2", Name: "serving", Version: v},
			Templates: []*common.File{{Name: "templates/cm.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: serving}\ndata: {version: " + v + "}\n")}},
		}
		archive, err := chartutil.Save(c, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(archive)
		if _, err := rc.Push(data, host+"/charts/serving:"+v); err != nil {
			t.Fatalf("push %s: %v", v, err)
		}
	}
	return "oci://" + host + "/charts"
}

// TestChartFromOCIRegistry: a range resolves against the registry's tags,
// the chart is pulled once and expanded; a missing chart is
// ErrChartNotFound; Argo CD's scheme-less form names the same registry.
func TestChartFromOCIRegistry(t *testing.T) {
	repo := ociRegistry(t, "0.1.0", "0.1.4", "0.2.0")
	charts := source.NewCharts(t.TempDir(), 0)
	ctx := context.Background()
	v, err := charts.Resolve(ctx, repo, "serving", "~0.1.0", source.Credentials{}, false)
	if err != nil || v != "0.1.4" {
		t.Fatalf("resolve ~0.1.0: %q %v", v, err)
	}
	dir, err := charts.Fetch(ctx, repo, "serving", v, source.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "templates/cm.yaml"))
	if err != nil || !strings.Contains(string(data), "version: 0.1.4") {
		t.Fatalf("expanded chart: %s %v", data, err)
	}
	bare := strings.TrimPrefix(repo, "oci://")
	if !source.IsOCI(bare) || source.IsOCI("https://charts.example.com") {
		t.Error("IsOCI")
	}
	if v, err := charts.Resolve(ctx, bare, "serving", "", source.Credentials{}, false); err != nil || v != "0.2.0" {
		t.Errorf("latest through the scheme-less URL: %q %v", v, err)
	}
	if _, err := charts.Resolve(ctx, repo, "missing", "1.0.0", source.Credentials{}, false); !errors.Is(err, source.ErrChartNotFound) {
		t.Errorf("missing chart: %v", err)
	}
	if _, err := charts.Resolve(ctx, repo, "serving", "9.9.9", source.Credentials{}, false); !errors.Is(err, source.ErrChartNotFound) {
		t.Errorf("missing version: %v", err)
	}
}
