package controller

import (
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
