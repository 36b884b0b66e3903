package controller

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
)

// InstallCRDs server-side applies mlcd's CRDs and waits until they are
// established.
func InstallCRDs(ctx context.Context, c client.Client) error {
	crds, err := v1alpha1.CRDs()
	if err != nil {
		return err
	}
	for _, crd := range crds {
		var live apiextensionsv1.CustomResourceDefinition
		exists := false
		if err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, &live); err == nil {
			exists = true
			other, ok := OwnedByOther(&live)
			if ok && crd.Labels["mlcd.io/shared-crd"] == "true" {
				continue // Argo Rollouts' own CRD: used as it is
			}
			if ok {
				return fmt.Errorf("CRD %s is already installed and managed by %q (an Argo CD install?): mlcd does not run beside Argo CD on one cluster and will not take its CRDs over; use another cluster, or remove that install first", crd.Name, other)
			}
		} else if !apierrors.IsNotFound(err) {
			return fmt.Errorf("read CRD %s: %w", crd.Name, err)
		}
		crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		if err := c.Patch(ctx, crd, client.Apply, client.FieldOwner(apply.FieldManager), client.ForceOwnership); err != nil {
			if apierrors.IsForbidden(err) {
				if exists {
					// Installed by deploy/ (or an admin); this identity may
					// read CRDs but not write them: use them as they are.
					continue
				}
				return fmt.Errorf("CRD %s is not installed and this identity may not install it: apply deploy/ first (kubectl apply --server-side -k deploy/base, or the Helm chart deploy/chart/mlcd): %s", crd.Name, err)
			}
			return fmt.Errorf("install CRD %s: %w", crd.Name, err)
		}
	}
	names := make([]string, len(crds))
	for i, crd := range crds {
		names[i] = crd.Name
	}
	return WaitEstablished(ctx, c, names)
}

// WaitEstablished waits (up to a minute) until every named CRD is
// Established, so objects of its kind can be created.
func WaitEstablished(ctx context.Context, c client.Client, names []string) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			var live apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, client.ObjectKey{Name: name}, &live); err != nil {
				return false, nil
			}
			established := false
			for _, cond := range live.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			if !established {
				return false, nil
			}
		}
		return true, nil
	})
}

// OwnedByOther reports whether a CRD that exists was installed by someone
// else: no field of it is managed by mlcd. It returns that manager.
func OwnedByOther(crd *apiextensionsv1.CustomResourceDefinition) (string, bool) {
	if crd.Labels[v1alpha1.PartOfLabel] == v1alpha1.PartOfMLCD {
		return "", false // installed from deploy/, whoever applied it
	}
	other := ""
	for _, mf := range crd.ManagedFields {
		if mf.Manager == apply.FieldManager {
			return "", false
		}
		if other == "" && mf.Manager != "kube-apiserver" { // it only writes status
			other = mf.Manager
		}
	}
	if other == "" {
		return "", false // no record of who installed it: take it
	}
	return other, true
}
