package controller_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

const modelsSet = `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: models, namespace: {{NS}}}
spec:
  generators:
  - matrix:
      generators:
      - git: {repoURL: {{REPO}}, revision: main, directories: [{path: "models/*"}]}
      - list: {elements: [{env: stg}, {env: prd}]}
  template:
    metadata: {name: "{{path.basename}}-{{env}}"}
    spec:
      project: default
      source: {repoURL: {{REPO}}, targetRevision: main, path: "{{path}}"}
      destination: {server: https://kubernetes.default.svc, namespace: "{{NS}}-{{env}}"}
      syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`

// TestApplicationSet: git directories × list yields an app per model per
// environment; a new model directory adds two; removing it deletes its
// apps and their resources; an unreachable repository deletes nothing.
func TestApplicationSet(t *testing.T) {
	h := start(t, 2*time.Second)
	for _, env := range []string{"stg", "prd"} {
		h.namespaceGone(t, h.ns+"-"+env)
	}
	repo := gittest.New(t)
	repo.Write(map[string]string{"models/fraud/cm.yaml": cm("fraud"), "models/rec/cm.yaml": cm("rec"), "README.md": "models"}).Commit("two models")
	doc := strings.NewReplacer("{{NS}}", h.ns, "{{REPO}}", repo.URL()).Replace(modelsSet)
	set := &v1alpha1.ApplicationSet{}
	if err := yaml.UnmarshalStrict([]byte(doc), set); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Create(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	apps := func() []string {
		var list v1alpha1.ApplicationList
		if err := h.c.List(context.Background(), &list, client.InNamespace(h.ns), client.MatchingLabels{v1alpha1.AppSetLabel: "models"}); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range list.Items {
			if a.DeletionTimestamp == nil {
				out = append(out, a.Name)
			}
		}
		sort.Strings(out)
		return out
	}
	waitApps := func(want ...string) {
		t.Helper()
		sort.Strings(want)
		h.eventually(60*time.Second, fmt.Sprint("apps ", want), func() (bool, string) {
			got := apps()
			return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
		})
	}
	waitApps("fraud-stg", "fraud-prd", "rec-stg", "rec-prd")
	h.waitSynced("fraud-prd", "")

	repo.Write(map[string]string{"models/churn/cm.yaml": cm("churn")}).Commit("churn")
	waitApps("fraud-stg", "fraud-prd", "rec-stg", "rec-prd", "churn-stg", "churn-prd")
	h.waitSynced("churn-stg", "")
	churnCM := func() bool {
		err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns + "-stg", Name: "churn"}, &corev1.ConfigMap{})
		return err == nil
	}
	if !churnCM() {
		t.Fatal("churn-stg applied nothing")
	}

	repo.Remove("models/churn").Commit("drop churn")
	waitApps("fraud-stg", "fraud-prd", "rec-stg", "rec-prd")
	h.eventually(30*time.Second, "churn's resources deleted", func() (bool, string) { return !churnCM(), "" })

	// The repository goes away: nothing is deleted, the set says why.
	set = &v1alpha1.ApplicationSet{}
	h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: "models"}, set)
	before := set.DeepCopy()
	set.Spec.Generators[0].Matrix.Generators[0].Git.RepoURL = "http://127.0.0.1:1/gone.git"
	if err := h.c.Patch(context.Background(), set, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	h.eventually(30*time.Second, "ErrorOccurred", func() (bool, string) {
		s := &v1alpha1.ApplicationSet{}
		h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: "models"}, s)
		for _, c := range s.Status.Conditions {
			if c.Type == v1alpha1.AppSetConditionErrorOccurred && c.Status == "True" && strings.Contains(c.Message, "kept") {
				return true, ""
			}
		}
		return false, fmt.Sprint(s.Status.Conditions)
	})
	time.Sleep(3 * time.Second)
	if got := apps(); len(got) != 4 {
		t.Fatalf("an unreachable repository deleted apps: %v", got)
	}
}
