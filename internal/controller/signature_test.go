package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/promote"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

func TestSignedRevisionsOnly(t *testing.T) {
	h := start(t, time.Minute)
	lead, leadFP, leadPub := gittest.SSHKey(t)
	other, _, _ := gittest.SSHKey(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.GPGKeysConfigMap, Namespace: h.ns}, Data: map[string]string{"tech-lead.pub": leadPub}}
	if err := h.c.Create(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	dest := h.ns + "-signed"
	h.namespaceGone(t, dest)
	h.create(`
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: signed, namespace: {{NS}}}
spec:
  sourceRepos: ["*"]
  destinations: [{server: https://kubernetes.default.svc, namespace: "*"}]
  clusterResourceWhitelist: [{group: "", kind: Namespace}]
  signatureKeys: [{keyID: "`+leadFP+`"}]
`, nil)
	repo := modelRepo(t)
	doc := strings.Replace(app, "project: default", "project: signed", 1)
	h.create(doc, map[string]string{"{{NAME}}": "signed", "{{REPO}}": repo.URL(), "{{DEST}}": dest, "{{SELFHEAL}}": "true"})
	h.waitCondition("signed", v1alpha1.ConditionComparisonError, "is unsigned")
	if d := h.deployment(dest, "fraud-detection"); d != nil {
		t.Fatal("an unsigned revision was applied")
	}

	// Signed, but by a key the project does not list.
	if _, err := promote.Approve(context.Background(), promote.ApproveOptions{Push: promote.Push{Dir: repo.Dir, NoPush: true}, KeyFile: other}); err != nil {
		t.Fatal(err)
	}
	h.refresh("signed")
	h.waitCondition("signed", v1alpha1.ConditionComparisonError, "not from an allowed key")

	res, err := promote.Approve(context.Background(), promote.ApproveOptions{Push: promote.Push{Dir: repo.Dir, NoPush: true}, KeyFile: lead})
	if err != nil {
		t.Fatal(err)
	}
	h.refresh("signed")
	h.waitSynced("signed", res.Commit)
}
