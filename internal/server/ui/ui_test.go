package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestBuildIsOfTheSources: dist/source.sha256 (written by the build) is
// the hash of web/'s sources and lockfile as committed, so the embedded UI
// is the build of this source (rebuild: cd web && npm ci && npm run build).
func TestBuildIsOfTheSources(t *testing.T) {
	root := filepath.Join("..", "..", "..", "web")
	files := []string{"index.html", "package.json", "package-lock.json", "vite.config.js"}
	err := filepath.WalkDir(filepath.Join(root, "src"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		h.Write([]byte(f + "\n"))
		h.Write(data)
	}
	want, err := fs.ReadFile(Files(), "source.sha256")
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.TrimSpace(string(want)) {
		t.Fatalf("internal/server/ui/dist was not built from web/ as committed (source hash %s, build says %s): run cd web && npm ci && npm run build", got, strings.TrimSpace(string(want)))
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("/ = %d %v", resp.StatusCode, resp.Header)
	}
	index, _ := fs.ReadFile(Files(), "index.html")
	for _, ref := range []string{"/assets/index-", ".js", ".css"} {
		if !strings.Contains(string(index), ref) {
			t.Errorf("index.html does not reference %s:\n%s", ref, index)
		}
	}
}
