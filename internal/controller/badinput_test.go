package controller_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestBadInputKeepsWhatRuns: each bad input leaves the running Deployment
// untouched and says what is wrong in a condition naming the file; other
// apps keep syncing.
func TestBadInputKeepsWhatRuns(t *testing.T) {
	h := start(t, time.Minute)
	chart := "models/fraud-detection/"
	outside := filepath.Join(h.cacheDir, "git", "outside-base")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(outside, "kustomization.yaml"), []byte("resources: [cm.yaml]\n"), 0o644)
	os.WriteFile(filepath.Join(outside, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: outside}\n"), 0o644)
	component := filepath.Join(h.cacheDir, "git", "outside-component")
	os.MkdirAll(component, 0o755)
	os.WriteFile(filepath.Join(component, "kustomization.yaml"), []byte("apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [cm.yaml]\n"), 0o644)
	os.WriteFile(filepath.Join(component, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: outside-component}\n"), 0o644)
	// A namespaced-only tenant project: its apps' namespaces only.
	h.create(fmt.Sprintf("apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: tenant, namespace: {{NS}}}\nspec:\n  sourceRepos: [\"*\"]\n  destinations: [{server: \"*\", namespace: %q}]\n  clusterResourceWhitelist: []\n", h.ns+"-*"), nil)
	cases := []struct {
		name      string
		repo      func(r *gittest.Repo)
		app       func(a *v1alpha1.Application)
		project   string // default: the default project
		condition string
		contains  string
	}{
		{name: "invalid-yaml-values", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "values-production.yaml": "model: [unclosed\n"})
		}, condition: v1alpha1.ConditionComparisonError, contains: "values-production.yaml: invalid YAML"},
		{name: "invalid-yaml-template", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "templates/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x\n"})
		}, condition: v1alpha1.ConditionComparisonError, contains: "templates/bad.yaml"},
		{name: "template-error", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "templates/broken.yaml": `{{ fail "broken template" }}`})
		}, condition: v1alpha1.ConditionComparisonError, contains: "broken template"},
		{name: "missing-values-file", repo: func(r *gittest.Repo) {
			r.Remove(chart + "values-production.yaml")
		}, condition: v1alpha1.ConditionComparisonError, contains: "values-production.yaml not found"},
		{name: "traversal-values-file", app: func(a *v1alpha1.Application) {
			a.Spec.Source.Helm.ValueFiles = []string{"../../../etc/passwd"}
		}, condition: v1alpha1.ConditionComparisonError, contains: "leaves the repository"},
		{name: "absolute-values-file", app: func(a *v1alpha1.Application) {
			a.Spec.Source.Helm.ValueFiles = []string{"/etc/passwd"}
		}, condition: v1alpha1.ConditionComparisonError, contains: "absolute paths are not allowed"},
		{name: "symlink-out", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "values-production.yaml": "->/etc/passwd"})
		}, condition: v1alpha1.ConditionComparisonError, contains: "values-production.yaml points outside the repository"},
		{name: "kustomize-base-outside", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{"kust/kustomization.yaml": "resources: [../../../../outside-base]\n"})
		}, app: func(a *v1alpha1.Application) {
			a.Spec.Source.Path, a.Spec.Source.Helm = "kust", nil
		}, condition: v1alpha1.ConditionComparisonError, contains: "kustomize build kust"},
		{name: "kustomize-base-outside-exists", repo: func(r *gittest.Repo) {
			// ../../../../outside-base from <cache>/git/trees/<repo>/<sha>/kust
			// is <cache>/git/outside-base, which the test fills with a
			// valid kustomization.
			r.Write(map[string]string{"kust/kustomization.yaml": "resources: [../../../../outside-base]\n"})
		}, app: func(a *v1alpha1.Application) {
			a.Spec.Source.Path, a.Spec.Source.Helm = "kust", nil
		}, condition: v1alpha1.ConditionComparisonError, contains: "kustomize build kust"},
		{name: "unknown-kind", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "templates/widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"})
		}, condition: v1alpha1.ConditionComparisonError, contains: "unknown kind"},
		{name: "missing-revision", app: func(a *v1alpha1.Application) {
			a.Spec.Source.TargetRevision = "no-such-branch"
		}, condition: v1alpha1.ConditionComparisonError, contains: "no-such-branch"},
		{name: "required-value-missing", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "templates/owner.yaml": `{{ required "model.owner is required" .Values.model.owner }}`})
		}, condition: v1alpha1.ConditionComparisonError, contains: "model.owner is required"},
		{name: "values-file-url", app: func(a *v1alpha1.Application) {
			a.Spec.Source.Helm.ValueFiles = []string{"https://example.com/values.yaml"}
		}, condition: v1alpha1.ConditionComparisonError, contains: "https://example.com/values.yaml"},
		{name: "symlink-loop", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "values-production.yaml": "->values-loop.yaml", chart + "values-loop.yaml": "->values-production.yaml"})
		}, condition: v1alpha1.ConditionComparisonError, contains: "target does not resolve inside the repository"},
		{name: "yaml-bomb-values", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "values-production.yaml": yamlBomb})
		}, condition: v1alpha1.ConditionComparisonError, contains: "values-production.yaml"},
		{name: "yaml-bomb-manifest", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "templates/bomb.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + indent(yamlBomb)})
		}, condition: v1alpha1.ConditionComparisonError, contains: "bomb"},
		{name: "kustomize-reads-etc-passwd", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{"kust/kustomization.yaml": "configMapGenerator:\n- name: stolen\n  files: [/etc/passwd]\n"})
		}, app: func(a *v1alpha1.Application) {
			a.Spec.Source.Path, a.Spec.Source.Helm = "kust", nil
		}, condition: v1alpha1.ConditionComparisonError, contains: "kustomize build kust"},
		{name: "unreachable-repo", app: func(a *v1alpha1.Application) {
			a.Spec.Source.RepoURL = "file:///nonexistent/ml-deployments"
		}, condition: v1alpha1.ConditionComparisonError, contains: "unreachable"},
		{name: "helm-until-loop", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "templates/loop.yaml": `{{ range until 100000000 }}x{{ end }}`})
		}, condition: v1alpha1.ConditionComparisonError, contains: "until: 100000000 items"},
		{name: "helm-repeat-bomb", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "templates/bomb.yaml": `{{ repeat 100000000 "lol" }}`})
		}, condition: v1alpha1.ConditionComparisonError, contains: "repeat: 100000000"},
		{name: "file-of-100-mib", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "weights.bin": strings.Repeat("0", 100<<20)})
		}, condition: v1alpha1.ConditionComparisonError, contains: "weights.bin is 100 MiB"},
		{name: "kustomize-component-outside", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{"kust/kustomization.yaml": "resources: [cm.yaml]\ncomponents: [../../../../outside-component]\n", "kust/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k}\n"})
		}, app: func(a *v1alpha1.Application) {
			a.Spec.Source.Path, a.Spec.Source.Helm = "kust", nil
		}, condition: v1alpha1.ConditionComparisonError, contains: "outside-component"},
		{name: "kustomize-helmcharts-outside", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{"kust/kustomization.yaml": "helmChartInflationGenerator: []\nhelmGlobals: {chartHome: ../../../../outside-base}\nhelmCharts:\n- {name: outside, releaseName: x}\n"})
		}, app: func(a *v1alpha1.Application) {
			a.Spec.Source.Path, a.Spec.Source.Helm = "kust", nil
		}, condition: v1alpha1.ConditionComparisonError, contains: "kustomize build kust"},
		{name: "dependency-remote-unreachable", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "Chart.yaml": "apiVersion: v2\nname: fraud-detection\nversion: 0.1.0\ndependencies:\n- {name: redis, version: 1.2.3, repository: \"https://charts.mlcd.invalid/stable\"}\n"})
		}, condition: v1alpha1.ConditionComparisonError, contains: "redis"},
		{name: "list-without-kind", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "templates/list.yaml": "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: listed}\n"})
		}, condition: v1alpha1.ConditionComparisonError, contains: "list.yaml"},
		{name: "app-path-traversal", app: func(a *v1alpha1.Application) {
			a.Spec.Source.Path = "../../../etc"
		}, condition: v1alpha1.ConditionComparisonError, contains: "leaves the repository"},
		{name: "app-path-missing", app: func(a *v1alpha1.Application) {
			a.Spec.Source.Path = "models/no-such-model"
		}, condition: v1alpha1.ConditionComparisonError, contains: "app path models/no-such-model does not exist"},
		{name: "helm-parameter-huge-index", app: func(a *v1alpha1.Application) {
			a.Spec.Source.Helm.Parameters = append(a.Spec.Source.Helm.Parameters, v1alpha1.HelmParameter{Name: "model.ports[99999999]", Value: "x"})
		}, condition: v1alpha1.ConditionComparisonError, contains: "helm parameter model.ports[99999999]: index of 99999999 is greater than maximum"},
		{name: "project-denied-namespace", project: "tenant", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "templates/escape.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: escape, namespace: kube-system}\n"})
		}, condition: v1alpha1.ConditionInvalidSpecError, contains: "kube-system"},
		{name: "project-denied-cluster-scope", project: "tenant", repo: func(r *gittest.Repo) {
			r.Write(map[string]string{chart + "templates/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: tenant-escape}\n"})
		}, condition: v1alpha1.ConditionInvalidSpecError, contains: "Namespace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := modelRepo(t)
			dest := h.ns + "-" + c.name
			if len(dest) > 63 {
				dest = dest[len(dest)-63:]
			}
			dest = strings.TrimLeft(dest, "-")
			h.namespaceGone(t, dest)
			// No HPA: its scaling would change the Deployment under the test.
			doc := strings.Replace(app, "helm: {valueFiles: [values-production.yaml]}", `helm: {valueFiles: [values-production.yaml], parameters: [{name: autoscaling.enabled, value: "false"}]}`, 1)
			if c.project != "" {
				doc = strings.Replace(doc, "project: default", "project: "+c.project, 1)
			}
			h.create(doc, map[string]string{"{{NAME}}": c.name, "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
			h.waitSynced(c.name, "")
			before := h.deployment(dest, "fraud-detection")

			if c.repo != nil {
				c.repo(repo)
				repo.Commit("bad: " + c.name)
			}
			if c.app != nil {
				h.patchApp(c.name, c.app)
			}
			h.refresh(c.name)
			h.waitCondition(c.name, c.condition, c.contains)
			// The status tells the truth: not Synced over a failed
			// comparison, while health stays that of what runs.
			h.eventually(10*time.Second, "Unknown and Healthy", func() (bool, string) {
				st := h.app(c.name).Status
				return st.Sync.Status == v1alpha1.SyncStatusUnknown && st.Health.Status == v1alpha1.HealthHealthy, fmt.Sprintf("sync=%s health=%s", st.Sync.Status, st.Health.Status)
			})
			h.waitEvent(c.name, c.condition, c.contains)
			time.Sleep(500 * time.Millisecond)
			after := h.deployment(dest, "fraud-detection")
			if after == nil || after.Generation != before.Generation || image(after) != image(before) {
				t.Fatalf("running deployment changed: generation %d -> %v", before.Generation, after)
			}
			if msg := h.app(c.name).Status.Conditions[0].Message; strings.Contains(msg, "\n") {
				t.Errorf("condition is not one line: %q", msg)
			}
		})
	}

	// Other apps keep syncing beside the broken ones.
	repo := modelRepo(t)
	dest := h.ns + "-healthy"
	h.namespaceGone(t, dest)
	h.create(app, map[string]string{"{{NAME}}": "healthy", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitSynced("healthy", "")
}

// yamlBomb is the billion-laughs document: nine levels of nine aliases.
const yamlBomb = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
