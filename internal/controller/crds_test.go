package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

func TestOwnedByOther(t *testing.T) {
	crd := func(managers ...string) *apiextensionsv1.CustomResourceDefinition {
		c := &apiextensionsv1.CustomResourceDefinition{}
		for _, m := range managers {
			c.ManagedFields = append(c.ManagedFields, metav1.ManagedFieldsEntry{Manager: m, Operation: metav1.ManagedFieldsOperationApply})
		}
		return c
	}
	cases := []struct {
		managers []string
		want     string
		other    bool
	}{
		{[]string{"mlcd"}, "", false},
		{[]string{"kube-apiserver", "mlcd"}, "", false},
		{[]string{"argocd-controller"}, "argocd-controller", true},
		{[]string{"kubectl-client-side-apply"}, "kubectl-client-side-apply", true},
		{nil, "", false},
		{[]string{"kube-apiserver", "kubectl-create"}, "kubectl-create", true},
	}
	for _, c := range cases {
		got, other := OwnedByOther(crd(c.managers...))
		if got != c.want || other != c.other {
			t.Errorf("%v: got %q %v, want %q %v", c.managers, got, other, c.want, c.other)
		}
	}
}

// TestSchemaRefusesUnknownFields: the CRDs carry the Go types' schema, so
// a misspelt field is an error under strict field validation (kubectl's
// default is a warning) instead of being kept silently; valuesObject
// stays open as in Argo CD.
func TestSchemaRefusesUnknownFields(t *testing.T) {
	env := clustertest.Get(t)
	ns := env.Namespace(t)
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := InstallCRDs(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	app := func(doc string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		u.SetNamespace(ns)
		return u
	}
	typo := app(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: typo}
spec:
  project: default
  source: {repoURL: file:///r, path: p}
  destination: {server: https://kubernetes.default.svc, namespace: x}
  syncPolicy: {automated: {prune: true, selfheal: true}}
`)
	err = c.Create(context.Background(), typo, client.FieldValidation("Strict"))
	if err == nil || !strings.Contains(err.Error(), `unknown field "spec.syncPolicy.automated.selfheal"`) {
		t.Fatalf("a misspelt field: %v", err)
	}
	open := app(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: open}
spec:
  project: default
  source: {repoURL: file:///r, path: p, helm: {valuesObject: {anything: {goes: [1, 2]}}}}
  destination: {server: https://kubernetes.default.svc, namespace: x}
  info: [{name: owner, value: ml-platform}]
`)
	if err := c.Create(context.Background(), open, client.FieldValidation("Strict")); err != nil {
		t.Fatalf("valuesObject and Argo CD's info: %v", err)
	}
}
