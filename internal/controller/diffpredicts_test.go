package controller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestDiffPredictsSync: the diff (the API's and `mlcd app diff`) computes
// the desired state with the sync's own function: a multi-source app with
// `$values` value files and an app with a PreSync hook, once synced, diff
// in sync — no "changes" from rendering only the first source or from
// hooks.
func TestDiffPredictsSync(t *testing.T) {
	h := start(t, time.Minute)
	charts := gittest.New(t)
	chartSHA := charts.Write(map[string]string{
		"chart/Chart.yaml":        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
		"chart/values.yaml":       "greeting: default\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: greeting}\ndata: {greeting: \"{{ .Values.greeting }}\"}\n",
		"hooked/cm.yaml":          cm("hooked-cm"),
		"hooked/presync.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: presync-marker, annotations: {argocd.argoproj.io/hook: PreSync, argocd.argoproj.io/hook-delete-policy: BeforeHookCreation}}\ndata: {k: v}\n",
	}).Commit("chart and a hooked app")
	values := gittest.New(t)
	valuesSHA := values.Write(map[string]string{"env/values.yaml": "greeting: from-values-repo\n"}).Commit("values")
	h.create(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: multi, namespace: {{NS}}}
spec:
  project: default
  sources:
  - {repoURL: {{CHARTS}}, targetRevision: main, path: chart, helm: {valueFiles: [$values/env/values.yaml]}}
  - {repoURL: {{VALUES}}, targetRevision: main, ref: values}
  destination: {server: https://kubernetes.default.svc, namespace: {{NS}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
`, map[string]string{"{{CHARTS}}": charts.URL(), "{{VALUES}}": values.URL()})
	h.create(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: hooked, namespace: {{NS}}}
spec:
  project: default
  source: {repoURL: {{CHARTS}}, targetRevision: main, path: hooked}
  destination: {server: https://kubernetes.default.svc, namespace: {{NS}}}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
`, map[string]string{"{{CHARTS}}": charts.URL()})
	h.waitSynced("multi", chartSHA+","+valuesSHA)
	h.waitSynced("hooked", chartSHA)
	for _, name := range []string{"multi", "hooked"} {
		var changes []string
		h.eventually(30*time.Second, name+" diffs in sync", func() (bool, string) {
			res, err := h.ctrl().Reconciler.Diff(context.Background(), h.app(name))
			if err != nil {
				return false, err.Error()
			}
			changes = nil
			for _, r := range res {
				if r.Action != apply.Unchanged {
					changes = append(changes, fmt.Sprintf("%s %s/%s", r.Action, r.Object.GetKind(), r.Object.GetName()))
				}
			}
			return len(changes) == 0, fmt.Sprint(changes)
		})
	}
}
