package main

import (
	"archive/tar"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestImage: the layout holds one image named mlcd:test whose entrypoint
// is the binary, run as the chart's non-root user, with a writable /tmp.
func TestImage(t *testing.T) {
	img, err := Image([]byte("#!binary"), []byte("CERTS"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Write(dir, img, "mlcd:test"); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "mlcd:test" || m.Manifests[0].MediaType != types.OCIManifestSchema1 {
		t.Fatalf("index: %+v", m.Manifests)
	}
	read, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := read.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Entrypoint[0] != "/usr/local/bin/mlcd" || cf.Config.User != "65532:65532" || cf.OS != "linux" {
		t.Errorf("config: %+v", cf.Config)
	}
	files := map[string]string{}
	tr := tar.NewReader(mutate.Extract(read))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
		if h.Name == "tmp/" && h.Mode != 0o1777 {
			t.Errorf("/tmp mode %o", h.Mode)
		}
	}
	if files["usr/local/bin/mlcd"] != "#!binary" || files["etc/ssl/certs/ca-certificates.crt"] != "CERTS" {
		t.Errorf("files: %v", len(files))
	}
}
