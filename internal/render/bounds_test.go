package render

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// renderTemplate writes a chart whose one template is tmpl and renders it.
func renderTemplate(t *testing.T, tmpl string) error {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "c", "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "c", "Chart.yaml"), []byte("apiVersion: v2\nname: c\nversion: 0.1.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "c", "templates", "t.yaml"), []byte(tmpl), 0o644)
	_, err := New().Render(Input{Root: dir, Revision: "abc", AppName: "a", Source: v1alpha1.ApplicationSource{Path: "c", Helm: &v1alpha1.ApplicationSourceHelm{}}})
	return err
}

func TestTemplateBounds(t *testing.T) {
	cases := map[string]struct{ tmpl, wantErr string }{
		"until loop":       {`{{ range until 100000000 }}x{{ end }}`, "until: 100000000 items, more than the 100000"},
		"negative until":   {`{{ range until -100000000 }}x{{ end }}`, "until: 100000000 items"},
		"untilStep":        {`{{ range untilStep 0 1000000000 3 }}x{{ end }}`, "untilStep: 333333333 items"},
		"seq":              {`{{ seq 1 100000000 }}`, "seq: 99999999 items"},
		"repeat":           {`{{ repeat 100000000 "lol" }}`, "repeat: 100000000 × 3 bytes"},
		"small until ok":   {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n{{- range $i := until 3 }}\n  k{{ $i }}: {{ repeat 2 \"ab\" | quote }}\n{{- end }}\n  s: {{ seq 3 | quote }}\n  u: {{ untilStep 0 6 2 | join \",\" | quote }}\n", ""},
		"fail still fails": {`{{ fail "no" }}`, "no"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := renderTemplate(t, c.tmpl)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
		})
	}
}

// A loop with no Sprig function in it (Go templates range over integers)
// is cut by the render timeout.
func TestTemplateTimeout(t *testing.T) {
	defer func(d time.Duration) { renderTimeout = d }(renderTimeout)
	renderTimeout = 200 * time.Millisecond
	started := time.Now()
	err := renderTemplate(t, `{{ range $i := 100000000 }}{{ end }}`)
	if err == nil || !strings.Contains(err.Error(), "rendering took longer than 200ms") {
		t.Fatalf("error %v, want the timeout", err)
	}
	if took := time.Since(started); took > 2*time.Second {
		t.Fatalf("the timeout returned after %s", took)
	}
}

func TestFileSizeBound(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "app"), 0o755)
	os.WriteFile(filepath.Join(dir, "app", "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"), 0o644)
	f, _ := os.Create(filepath.Join(dir, "app", "weights.bin"))
	f.Truncate(100 << 20) // sparse: 100 MiB without writing them
	f.Close()
	_, err := New().Render(Input{Root: dir, Revision: "abc", AppName: "a", Source: v1alpha1.ApplicationSource{Path: "app"}})
	if err == nil || !strings.Contains(err.Error(), "file app/weights.bin is 100 MiB, larger than the 16 MiB") {
		t.Fatalf("error %v", err)
	}
}

// A render that timed out is not started again for the same inputs (a
// looping template would otherwise hold a CPU at every reconcile); other
// inputs still render.
func TestTimedOutRenderNotRetried(t *testing.T) {
	defer func(d time.Duration) { renderTimeout = d }(renderTimeout)
	renderTimeout = 200 * time.Millisecond
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "c", "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "c", "Chart.yaml"), []byte("apiVersion: v2\nname: c\nversion: 0.1.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "c", "templates", "t.yaml"), []byte(`{{ range $i := 100000000 }}{{ end }}`), 0o644)
	r := New()
	in := Input{Root: dir, Revision: "abc", AppName: "a", Source: v1alpha1.ApplicationSource{Path: "c", Helm: &v1alpha1.ApplicationSourceHelm{}}}
	if _, err := r.Render(in); !errors.Is(err, ErrRenderTimeout) {
		t.Fatalf("first render: %v", err)
	}
	started := time.Now()
	_, err := r.Render(in)
	if !errors.Is(err, ErrRenderTimeout) || !strings.Contains(err.Error(), "not rendered again") {
		t.Fatalf("second render: %v", err)
	}
	if took := time.Since(started); took > 50*time.Millisecond {
		t.Errorf("the same inputs were rendered again (%s)", took)
	}
	if n := r.Renders(); n != 0 {
		t.Errorf("%d renders counted", n)
	}
}
