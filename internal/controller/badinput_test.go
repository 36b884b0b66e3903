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
	cases := []struct {
		name      string
		repo      func(r *gittest.Repo)
		app       func(a *v1alpha1.Application)
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
