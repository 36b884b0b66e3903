package controller_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/promote"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

const policy = `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection}
spec:
  registeredModel: fraud-detection
  versionKey: model.version
  environments:
  - {name: staging, valuesFile: values-staging.yaml, application: fd-staging}
  - {name: production, valuesFile: values-production.yaml, application: fd-production, requires: staging}
  gates:
  - {metric: auc, op: ">=", value: 0.92}
`

// TestModelGateAndWriteBack: staging syncs a registered version and moves
// the staging alias; production follows only then; a version missing from
// the registry is not applied and the app says why.
func TestModelGateAndWriteBack(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startWith(t, time.Minute, reg.Client)
	repo := modelRepo(t)
	repo.Write(map[string]string{"models/fraud-detection/mlcd.yaml": policy}).Commit("policy")
	v1 := registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95})

	staging, prod := h.ns+"-stg", h.ns+"-prod"
	h.namespaceGone(t, staging)
	h.namespaceGone(t, prod)
	for name, dest := range map[string]string{"fd-staging": staging, "fd-production": prod} {
		doc := strings.ReplaceAll(app, "values-production.yaml", "values-"+strings.TrimPrefix(name, "fd-")+".yaml")
		h.create(doc, map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	}
	h.waitSynced("fd-staging", "")
	h.waitSynced("fd-production", "")
	ctx := context.Background()
	for _, alias := range []string{"staging", "production"} {
		got, err := reg.Client.GetVersionByAlias(ctx, "fraud-detection", alias)
		if err != nil || got.Version != v1.Version {
			t.Fatalf("alias %s = %v, %v; want version %s", alias, got, err, v1.Version)
		}
		if sha, _ := got.Tag("mlcd.git_sha"); sha == "" {
			t.Errorf("version not tagged with mlcd.git_sha")
		}
	}
	d := h.deployment(prod, "fraud-detection")
	if d.Annotations[v1alpha1.AnnotationModelVersion] != "v2.3.1" || d.Annotations[v1alpha1.AnnotationRunID] != v1.RunID {
		t.Errorf("lineage annotations = %v", d.Annotations)
	}

	// Git names v2.3.3, which the registry lacks: nothing changes.
	repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": "model:\n  version: v2.3.3\n  replicas: 5\n"}).Commit("bump to a missing version")
	h.refresh("fd-production")
	h.waitCondition("fd-production", v1alpha1.ConditionModelGate, "model exists in registry: fraud-detection has no version v2.3.3")
	// Known but refused: OutOfSync, while what runs stays Healthy.
	h.eventually(30*time.Second, "OutOfSync and Healthy", func() (bool, string) {
		st := h.app("fd-production").Status
		return st.Sync.Status == v1alpha1.SyncStatusOutOfSync && st.Health.Status == v1alpha1.HealthHealthy, fmt.Sprintf("sync=%s health=%s", st.Sync.Status, st.Health.Status)
	})
	h.waitEvent("fd-production", v1alpha1.ConditionModelGate, "v2.3.3")
	time.Sleep(time.Second)
	if img := image(h.deployment(prod, "fraud-detection")); !strings.HasSuffix(img, ":v2.3.1") {
		t.Fatalf("running image changed to %s", img)
	}
}

// TestModelPolicyObject: without mlcd.yaml in Git, a ModelPolicy object in
// the app's namespace that names the app governs it.
func TestModelPolicyObject(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startWith(t, time.Minute, reg.Client)
	repo := modelRepo(t)
	h.create(`apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection, namespace: {{NS}}}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: production, valuesFile: values-production.yaml, application: fd-obj}
  gates:
  - {metric: auc, op: ">=", value: 0.92}
`, nil)
	dest := h.ns + "-obj"
	h.namespaceGone(t, dest)
	h.create(app, map[string]string{"{{NAME}}": "fd-obj", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitCondition("fd-obj", v1alpha1.ConditionModelGate, "fraud-detection has no version v2.3.1")
	if h.deployment(dest, "fraud-detection") != nil {
		t.Fatal("a version missing from the registry was applied")
	}
	v := registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95})
	h.refresh("fd-obj")
	h.waitSynced("fd-obj", "")
	h.eventually(20*time.Second, "alias production", func() (bool, string) {
		got, err := reg.Client.GetVersionByAlias(context.Background(), "fraud-detection", "production")
		return err == nil && got.Version == v.Version, ""
	})
}

// TestKustomizeOverlayIsGoverned: a kustomize overlay's app is governed by
// mlcd.yaml in the model directory above it; the version is the image tag
// (the Application's kustomize.images override wins over the
// kustomization), and a version missing from the registry is not applied.
func TestKustomizeOverlayIsGoverned(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startWith(t, time.Minute, reg.Client)
	repo := gittest.New(t)
	repo.Write(map[string]string{
		"models/ranker/mlcd.yaml": `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: ranker}
spec:
  registeredModel: ranker
  image: ghcr.io/company/ranker
  environments:
  - {name: production, valuesFile: overlays/production/kustomization.yaml}
`,
		"models/ranker/base/kustomization.yaml": "resources: [deployment.yaml]\n",
		"models/ranker/base/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: ranker}
spec:
  replicas: 1
  selector: {matchLabels: {app: ranker}}
  template:
    metadata: {labels: {app: ranker}}
    spec:
      containers: [{name: server, image: ghcr.io/company/ranker:latest, resources: {requests: {cpu: 10m}}}]
`,
		"models/ranker/overlays/production/kustomization.yaml": "resources: [../../base]\nimages:\n- name: ghcr.io/company/ranker\n  newTag: v1.0.0\n",
	})
	repo.Commit("ranker")
	dest := h.ns + "-rk"
	h.namespaceGone(t, dest)
	doc := `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: ranker-production, namespace: {{NS}}}
spec:
  project: default
  source:
    repoURL: {{REPO}}
    targetRevision: main
    path: models/ranker/overlays/production
    kustomize:
      images: [ghcr.io/company/ranker:v1.1.0]
  destination: {server: https://kubernetes.default.svc, namespace: {{DEST}}}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`
	h.create(doc, map[string]string{"{{REPO}}": repo.URL(), "{{DEST}}": dest})
	h.waitCondition("ranker-production", v1alpha1.ConditionModelGate, "ranker has no version v1.1.0")
	if h.deployment(dest, "ranker") != nil {
		t.Fatal("a version missing from the registry was applied")
	}
	registrytest.Register(t, reg.Client, "ranker", "v1.1.0", nil)
	h.refresh("ranker-production")
	h.waitSynced("ranker-production", "")
	d := h.deployment(dest, "ranker")
	if img := image(d); img != "ghcr.io/company/ranker:v1.1.0" || d.Annotations[v1alpha1.AnnotationModelVersion] != "v1.1.0" {
		t.Fatalf("image %s, annotations %v", img, d.Annotations)
	}
}

// TestAppNotNamedByItsEnvironment is the case where the controller and
// `mlcd model check` once disagreed: an Application that uses the values
// file of an environment which names another application. Both now say
// (through internal/modelpolicy) that it deploys no environment: the
// controller refuses it, and check does not take its parameter as the
// environment's version.
func TestAppNotNamedByItsEnvironment(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startWith(t, time.Minute, reg.Client)
	repo := modelRepo(t)
	repo.Write(map[string]string{"models/fraud-detection/mlcd.yaml": policy}).Commit("policy")
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95})
	dest := h.ns + "-rogue"
	h.namespaceGone(t, dest)
	doc := strings.Replace(app, "values-production.yaml", "values-staging.yaml", 1)
	h.create(doc, map[string]string{"{{NAME}}": "rogue", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitCondition("rogue", v1alpha1.ConditionInvalidSpecError, "rogue renders models/fraud-detection but is not an environment of ModelPolicy fraud-detection")
	if h.deployment(dest, "fraud-detection") != nil {
		t.Fatal("an app no environment names was deployed")
	}

	// The same tree through check: the rogue Application's parameter is
	// not the staging version; the values file is.
	work := t.TempDir()
	gittest.Git(t, work, "clone", "-q", repo.Dir, "w")
	w := filepath.Join(work, "w")
	rogue := strings.NewReplacer("{{NAME}}", "rogue", "{{NS}}", "argocd", "{{REPO}}", repo.URL(), "{{DEST}}", dest, "{{SELFHEAL}}", "true").Replace(doc)
	rogue = strings.Replace(rogue, "helm: {valueFiles: [values-staging.yaml]}", "helm: {valueFiles: [values-staging.yaml], parameters: [{name: model.version, value: v9.9.9}]}", 1)
	if err := os.MkdirAll(filepath.Join(w, "argocd"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(w, "argocd", "rogue.yaml"), []byte(rogue), 0o644)
	gittest.Git(t, w, "add", ".")
	gittest.Git(t, w, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "rogue app")
	r, err := git.PlainOpen(w)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := promote.Changes(r, "origin/main", "HEAD", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 0 {
		t.Fatalf("check took the rogue app's parameter as a version change: %+v", changes)
	}
}

// TestModelBelongsToItsProjects: the admin maps fraud-detection to project
// team-b (mlcd.io/models on its AppProject). Team A's app, whose mlcd.yaml
// in Git names fraud-detection, is refused with a condition naming the
// mapping; it moves no alias of team B's model and applies nothing. Team
// B's app with the same repository is governed as usual.
func TestModelBelongsToItsProjects(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startWith(t, time.Minute, reg.Client)
	repo := modelRepo(t)
	repo.Write(map[string]string{"models/fraud-detection/mlcd.yaml": `apiVersion: mlcd.io/v1alpha1
kind: ModelPolicy
metadata: {name: fraud-detection}
spec:
  registeredModel: fraud-detection
  environments:
  - {name: production, valuesFile: values-production.yaml, application: fd-a}
  - {name: staging, valuesFile: values-production.yaml, application: fd-b}
`}).Commit("team A names team B's model")
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95})
	for _, p := range []string{"team-a", "team-b"} {
		ann := ""
		if p == "team-b" {
			ann = "\n  annotations: {mlcd.io/models: \"fraud-*\"}"
		}
		h.create(fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: %s
  namespace: {{NS}}%s
spec:
  sourceRepos: ["*"]
  destinations: [{server: "*", namespace: "*"}]
  clusterResourceWhitelist: [{group: "*", kind: "*"}]
`, p, ann), nil)
	}
	destA, destB := h.ns+"-a", h.ns+"-b"
	h.namespaceGone(t, destA)
	h.namespaceGone(t, destB)
	doc := strings.Replace(app, "project: default", "project: {{PROJECT}}", 1)
	h.create(doc, map[string]string{"{{NAME}}": "fd-a", "{{PROJECT}}": "team-a", "{{REPO}}": repo.URL(), "{{DEST}}": destA, "{{SELFHEAL}}": "true"})
	h.waitCondition("fd-a", v1alpha1.ConditionInvalidSpecError, "registered model fraud-detection is mapped to project(s) team-b, not to team-a")
	if _, err := reg.Client.GetVersionByAlias(context.Background(), "fraud-detection", "production"); err == nil {
		t.Fatal("team A's app moved team B's production alias")
	}
	if h.deployment(destA, "fraud-detection") != nil {
		t.Fatal("team A's app applied team B's model")
	}
	h.create(doc, map[string]string{"{{NAME}}": "fd-b", "{{PROJECT}}": "team-b", "{{REPO}}": repo.URL(), "{{DEST}}": destB, "{{SELFHEAL}}": "true"})
	h.waitSynced("fd-b", "")
	h.eventually(20*time.Second, "team B's staging alias", func() (bool, string) {
		_, err := reg.Client.GetVersionByAlias(context.Background(), "fraud-detection", "staging")
		return err == nil, fmt.Sprint(err)
	})
}

// TestHealthyRecordNotForgeable: a tenant who writes its Application can
// add a version to the mlcd.io/healthy-versions annotation, but the record
// the rollback exemption reads lives in the control-plane namespace: the
// gate still refuses a version that never ran where production requires.
func TestHealthyRecordNotForgeable(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	h := startWith(t, time.Minute, reg.Client)
	repo := modelRepo(t)
	sha := repo.Write(map[string]string{
		"models/fraud-detection/mlcd.yaml":              policy,
		"models/fraud-detection/values-production.yaml": "model:\n  version: v2.3.5\n  replicas: 1\nautoscaling:\n  enabled: false\n",
	}).Commit("v2.3.5 straight to production")
	registrytest.Register(t, reg.Client, "fraud-detection", "v2.3.5", map[string]float64{"auc": 0.95})
	dest := h.ns + "-prod"
	h.namespaceGone(t, dest)
	doc := strings.Replace(app, "metadata: {name: {{NAME}}, namespace: {{NS}}}", "metadata: {name: {{NAME}}, namespace: {{NS}}, annotations: {mlcd.io/healthy-versions: v2.3.5}}", 1)
	h.create(doc, map[string]string{"{{NAME}}": "fd-production", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitCondition("fd-production", v1alpha1.ConditionModelGate, "staging")
	if h.deployment(dest, "fraud-detection") != nil {
		t.Fatal("a forged healthy-versions annotation exempted v2.3.5 from the staging requirement")
	}
	if a := h.app("fd-production"); a.Status.Sync.Revision == sha && a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
		t.Error("Synced over a refused version")
	}
}
