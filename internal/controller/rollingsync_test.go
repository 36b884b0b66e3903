package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

const rollingSet = `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: fraud, namespace: {{NS}}}
spec:
  generators:
  - list: {elements: [{env: staging}, {env: production}]}
  strategy:
    type: RollingSync
    rollingSync:
      steps:
      - matchExpressions: [{key: env, operator: In, values: [staging]}]
      - matchExpressions: [{key: env, operator: In, values: [production]}]
  template:
    metadata:
      name: "fd-{{env}}"
      labels: {env: "{{env}}"}
    spec:
      project: default
      source: {repoURL: {{REPO}}, targetRevision: main, path: models/fraud-detection, helm: {valueFiles: ["values-{{env}}.yaml"]}}
      destination: {server: https://kubernetes.default.svc, namespace: "{{NS}}-{{env}}"}
      syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`

// TestRollingSync: a commit bumping both environments changes staging
// first; production changes only once staging is Synced and Healthy at the
// new revision, and meanwhile says what it waits for. Automated sync stays
// on for both apps.
func TestRollingSync(t *testing.T) {
	h := start(t, time.Minute)
	for _, env := range []string{"staging", "production"} {
		h.namespaceGone(t, h.ns+"-"+env)
	}
	values := func(v string) string {
		return fmt.Sprintf("model:\n  version: %s\n  replicas: 1\nautoscaling:\n  enabled: false\n", v)
	}
	repo := modelRepo(t)
	repo.Write(map[string]string{"models/fraud-detection/values-staging.yaml": values("v1"), "models/fraud-detection/values-production.yaml": values("v1")}).Commit("v1")
	set := &v1alpha1.ApplicationSet{}
	if err := yaml.UnmarshalStrict([]byte(strings.NewReplacer("{{NS}}", h.ns, "{{REPO}}", repo.URL()).Replace(rollingSet)), set); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Create(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	h.waitSynced("fd-staging", "")
	h.waitSynced("fd-production", "")

	bump := repo.Write(map[string]string{"models/fraud-detection/values-staging.yaml": values("v2"), "models/fraud-detection/values-production.yaml": values("v2")}).Commit("v2 everywhere")
	// Slow staging down: its new pod is Ready only after the pod delay,
	// while production is refreshed first.
	h.refresh("fd-production")
	h.waitCondition("fd-production", "RollingSyncWaiting", "step 2 waits for fd-staging")
	h.refresh("fd-staging")
	h.eventually(60*time.Second, "production at v2", func() (bool, string) {
		prd := h.deployment(h.ns+"-production", "fraud-detection")
		if prd != nil && strings.HasSuffix(image(prd), ":v2") {
			stg := h.app("fd-staging").Status
			if stg.Sync.Revision != bump || stg.Health.Status != v1alpha1.HealthHealthy {
				t.Fatalf("production changed while staging was %s/%s at %s", stg.Sync.Status, stg.Health.Status, shortSHA(stg.Sync.Revision))
			}
			return true, ""
		}
		return false, fmt.Sprint(h.app("fd-production").Status.Conditions)
	})
	a := h.waitSynced("fd-production", bump)
	if a.Spec.SyncPolicy == nil || a.Spec.SyncPolicy.Automated == nil {
		t.Error("automated sync was switched off on a generated app")
	}
}
