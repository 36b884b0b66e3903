package render_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/render"
)

func root(t *testing.T) string {
	abs, err := filepath.Abs("testdata/repo")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func names(objs []*unstructured.Unstructured) string {
	var n []string
	for _, o := range objs {
		n = append(n, o.GetName())
	}
	sort.Strings(n)
	return strings.Join(n, ",")
}

func TestHelmValuesOrder(t *testing.T) {
	r := render.New()
	res, err := r.Render(render.Input{Root: root(t), Revision: "abc", AppName: "fraud", Namespace: "ml-production", Source: v1alpha1.ApplicationSource{
		Path: "chart",
		Helm: &v1alpha1.ApplicationSourceHelm{
			ValueFiles: []string{"values-prod.yaml"},
			Values:     "model: {replicas: 7}",
			Parameters: []v1alpha1.HelmParameter{{Name: "model.version", Value: "v2.3.2"}, {Name: "model.replicas", Value: "9", ForceString: true}},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cm := res.Objects[0]
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if res.Type != render.TypeHelm || cm.GetName() != "fraud" || cm.GetNamespace() != "ml-production" {
		t.Errorf("type %s name %s ns %s", res.Type, cm.GetName(), cm.GetNamespace())
	}
	if data["version"] != "v2.3.2" || data["replicas"] != "9" || data["kind"] != "string" {
		t.Errorf("data = %v; want parameters to win and forceString to keep a string", data)
	}
}

func TestHelmValueFileErrors(t *testing.T) {
	cases := map[string]struct {
		files   []string
		ignore  bool
		wantErr string
	}{
		"missing":          {[]string{"values-nope.yaml"}, false, "values file values-nope.yaml not found"},
		"missing ignored":  {[]string{"values-nope.yaml"}, true, ""},
		"traversal":        {[]string{"../../../etc/passwd"}, false, "leaves the repository"},
		"absolute":         {[]string{"/etc/passwd"}, false, "absolute paths are not allowed"},
		"in repo, sibling": {[]string{"../kbase/kustomization.yaml"}, false, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := render.New().Render(render.Input{Root: root(t), Revision: "abc", AppName: "a", Source: v1alpha1.ApplicationSource{
				Path: "chart", Helm: &v1alpha1.ApplicationSourceHelm{ValueFiles: c.files, IgnoreMissingValueFiles: c.ignore},
			}})
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestKustomize(t *testing.T) {
	res, err := render.New().Render(render.Input{Root: root(t), Revision: "abc", Source: v1alpha1.ApplicationSource{
		Path: "kapp", Kustomize: &v1alpha1.ApplicationSourceKustomize{Images: []string{"model-server:v2"}, CommonLabels: map[string]string{"team": "ml"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Objects[0]
	img, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if d.GetName() != "prod-server" || img[0].(map[string]any)["image"] != "model-server:v2" || d.GetLabels()["team"] != "ml" {
		t.Errorf("kustomize output %v", d.Object)
	}
}

// TestKustomizeBaseOutsideRepo: a base that exists on disk next to the
// checkout, and is a valid kustomization there, is still refused.
func TestKustomizeBaseOutsideRepo(t *testing.T) {
	tmp := t.TempDir()
	files := map[string]string{
		"outside/kustomization.yaml":      "resources: [cm.yaml]\n",
		"outside/cm.yaml":                 "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\ndata: {secret: \"outside the repo\"}\n",
		"repo/kescape/kustomization.yaml": "resources: [../../outside]\n",
	}
	for name, data := range files {
		p := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The base is valid where it is.
	res, err := render.New().Render(render.Input{Root: filepath.Join(tmp, "outside"), Revision: "abc", Source: v1alpha1.ApplicationSource{Path: "."}})
	if err != nil || names(res.Objects) != "stolen" {
		t.Fatalf("the outside base does not render by itself: %v", err)
	}
	_, err = render.New().Render(render.Input{Root: filepath.Join(tmp, "repo"), Revision: "abc", Source: v1alpha1.ApplicationSource{Path: "kescape"}})
	if err == nil {
		t.Fatal("a base outside the repository was accepted")
	}
	if !strings.Contains(err.Error(), "kescape") {
		t.Errorf("error does not name the app path: %v", err)
	}
}

func TestDirectory(t *testing.T) {
	cases := []struct {
		dir  *v1alpha1.ApplicationSourceDirectory
		want string
	}{
		{nil, "a,b"},
		{&v1alpha1.ApplicationSourceDirectory{Recurse: true}, "a,b,c,d"},
		{&v1alpha1.ApplicationSourceDirectory{Recurse: true, Exclude: "b.yaml"}, "a,c,d"},
		{&v1alpha1.ApplicationSourceDirectory{Recurse: true, Include: "{a.yaml,sub/*.yaml}"}, "a,c,d"},
	}
	for _, c := range cases {
		res, err := render.New().Render(render.Input{Root: root(t), Revision: "abc", Source: v1alpha1.ApplicationSource{Path: "dir", Directory: c.dir}})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(res.Objects); got != c.want {
			t.Errorf("%+v: got %s, want %s", c.dir, got, c.want)
		}
	}
}

func TestRenderCache(t *testing.T) {
	r := render.New()
	in := render.Input{Root: root(t), Revision: "abc", AppName: "x", Source: v1alpha1.ApplicationSource{Path: "chart"}}
	for i := 0; i < 3; i++ {
		res, err := r.Render(in)
		if err != nil {
			t.Fatal(err)
		}
		res.Objects[0].SetName("mutated") // callers get copies
	}
	in.Revision = "def"
	res, _ := r.Render(in)
	if r.Renders() != 2 || res.Objects[0].GetName() != "x" {
		t.Fatalf("renders = %d (want 2: one per revision), name %s", r.Renders(), res.Objects[0].GetName())
	}
}

func TestMissingPath(t *testing.T) {
	_, err := render.New().Render(render.Input{Root: root(t), Revision: "abcdef123", Source: v1alpha1.ApplicationSource{Path: "nope"}})
	if err == nil || !strings.Contains(err.Error(), "app path nope does not exist") {
		t.Fatalf("got %v", err)
	}
}

func TestHelmValuesAreReported(t *testing.T) {
	res, err := render.New().Render(render.Input{Root: root(t), Revision: "abc", AppName: "x", Source: v1alpha1.ApplicationSource{
		Path: "chart", Helm: &v1alpha1.ApplicationSourceHelm{ValueFiles: []string{"values-prod.yaml"}, Parameters: []v1alpha1.HelmParameter{{Name: "model.version", Value: "v9"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := render.ValueAt(res.Values, "model.version"); !ok || v != "v9" {
		t.Errorf("model.version = %q %v, want v9 (the parameter)", v, ok)
	}
	if v, ok := render.ValueAt(res.Values, "model.replicas"); !ok || v != "5" {
		t.Errorf("model.replicas = %q %v, want 5 from the values file", v, ok)
	}
	if _, ok := render.ValueAt(res.Values, "model.nope"); ok {
		t.Error("missing key found")
	}
}

// TestChartDependencies: a dependency vendored in charts/ renders with its
// parent; one that is not is a clear error, not a silent omission.
func TestChartDependencies(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644)
	}
	write("app/Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- {name: redis, version: 1.0.0, repository: https://charts.example.com}\n")
	write("app/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n")
	_, err := render.New().Render(render.Input{Root: dir, Revision: "a", AppName: "app", Source: v1alpha1.ApplicationSource{Path: "app"}})
	if err == nil || !strings.Contains(err.Error(), `depends on redis 1.0.0 (repository "https://charts.example.com"), which is not in its charts/ directory and cannot be fetched`) {
		t.Fatalf("missing dependency: %v", err)
	}
	// Fetched from its repository as `helm dependency build` would.
	write("fetched/redis/Chart.yaml", "apiVersion: v2\nname: redis\nversion: 1.2.0\n")
	write("fetched/redis/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: redis-fetched}\n")
	var asked string
	fetch := func(repo, name, constraint string) (string, error) {
		asked = repo + " " + name + " " + constraint
		return filepath.Join(dir, "fetched/redis"), nil
	}
	res, err := render.New().Render(render.Input{Root: dir, Revision: "a", AppName: "app", Source: v1alpha1.ApplicationSource{Path: "app"}, Dependency: fetch})
	if err != nil || names(res.Objects) != "app,redis-fetched" || asked != "https://charts.example.com redis 1.0.0" {
		t.Fatalf("fetched dependency: %v %v (asked %q)", err, res, asked)
	}
	// file:// dependencies load from the repository, never outside it.
	write("lib/Chart.yaml", "apiVersion: v2\nname: lib\nversion: 0.1.0\n")
	write("lib/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lib}\n")
	write("local/Chart.yaml", "apiVersion: v2\nname: local\nversion: 0.1.0\ndependencies:\n- {name: lib, version: 0.1.0, repository: file://../lib}\n")
	res, err = render.New().Render(render.Input{Root: dir, Revision: "a", AppName: "local", Source: v1alpha1.ApplicationSource{Path: "local"}})
	if err != nil || names(res.Objects) != "lib" {
		t.Fatalf("file:// dependency: %v %v", err, res)
	}
	write("escape/Chart.yaml", "apiVersion: v2\nname: escape\nversion: 0.1.0\ndependencies:\n- {name: lib, version: 0.1.0, repository: file://../../outside}\n")
	if _, err := render.New().Render(render.Input{Root: dir, Revision: "a", AppName: "escape", Source: v1alpha1.ApplicationSource{Path: "escape"}}); err == nil || !strings.Contains(err.Error(), "dependency lib at file://../../outside") {
		t.Fatalf("file:// out of the repository: %v", err)
	}
	write("app/charts/redis/Chart.yaml", "apiVersion: v2\nname: redis\nversion: 1.0.0\n")
	write("app/charts/redis/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: redis}\n")
	res, err = render.New().Render(render.Input{Root: dir, Revision: "b", AppName: "app", Source: v1alpha1.ApplicationSource{Path: "app"}})
	if err != nil || names(res.Objects) != "app,redis" {
		t.Fatalf("vendored dependency: %v %v", err, res)
	}
}
