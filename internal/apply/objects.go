package apply

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/internal/manifest"
)

// Namespaces, prune and delete, and reads of single objects.

// EnsureNamespace creates the namespace when missing (CreateNamespace=true).
// A namespace seen or created in the last namespaceMemo is not asked for
// again, and concurrent calls for one namespace share one question: a
// cold start of many apps into a few team namespaces asks once per
// namespace, not once per app. (The API server is asked, not an
// informer: a destination's credentials may not list namespaces.) A
// namespace deleted within the memo fails the next apply, which is retried.
func (a *Applier) EnsureNamespace(ctx context.Context, name string) error {
	if at, ok := a.namespaces.Load(name); ok && time.Since(at.(time.Time)) < namespaceMemo {
		return nil
	}
	_, err, _ := a.nsAsking.Do(name, func() (any, error) {
		err := a.ensureNamespace(ctx, name)
		if err == nil {
			a.namespaces.Store(name, time.Now())
		}
		return nil, err
	})
	return err
}

// ensureNamespace asks the API server for the namespace and creates it
// when missing.
func (a *Applier) ensureNamespace(ctx context.Context, name string) error {
	var existing corev1.Namespace
	if err := a.client.Get(ctx, client.ObjectKey{Name: name}, &existing); err == nil {
		return nil
	}
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	if err := a.client.Patch(ctx, ns, client.Apply, client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// namespaceMemo is how long EnsureNamespace trusts that a namespace exists.
const namespaceMemo = 5 * time.Second

// Prune deletes the objects (which the caller took from its inventory).
func (a *Applier) Prune(ctx context.Context, objs []*unstructured.Unstructured) ([]Result, error) {
	if len(objs) == 0 {
		return nil, nil
	}
	return a.delete(ctx, objs, ssa.DefaultDeleteOptions())
}

// Delete deletes the objects with the given propagation policy (an app
// deleted with its resources finalizer).
func (a *Applier) Delete(ctx context.Context, objs []*unstructured.Unstructured, propagation metav1.DeletionPropagation) ([]Result, error) {
	if len(objs) == 0 {
		return nil, nil
	}
	opts := ssa.DefaultDeleteOptions()
	opts.PropagationPolicy = propagation
	out, err := a.delete(ctx, objs, opts)
	for i := range out {
		if out[i].Action == Pruned {
			out[i].Action = Deleted
		}
	}
	return out, err
}

func (a *Applier) delete(ctx context.Context, objs []*unstructured.Unstructured, opts ssa.DeleteOptions) ([]Result, error) {
	cs, err := a.rm.DeleteAll(ctx, objs, opts)
	var out []Result
	if cs != nil {
		byKey := map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			byKey[describe(o)] = o
		}
		for _, e := range cs.Entries {
			out = append(out, Result{Object: byKey[e.Subject], Action: actionOf(e.Action), Message: e.Subject})
		}
	}
	if err != nil {
		return out, fmt.Errorf("prune: %s", manifest.OneLine(err))
	}
	return out, nil
}

// Get returns the live object, nil when it does not exist (also when its
// kind is not served yet: a CRD of the same source not yet applied).
func (a *Applier) Get(ctx context.Context, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	return get(ctx, a.reader, o)
}

// GetDirect is Get from the API server, past the cache: for an object the
// cache does not show yet although a sync created it.
func (a *Applier) GetDirect(ctx context.Context, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	return get(ctx, a.client, o)
}

func get(ctx context.Context, reader client.Reader, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(o.GroupVersionKind())
	err := reader.Get(ctx, client.ObjectKeyFromObject(o), live)
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return live, nil
}

func describe(o *unstructured.Unstructured) string { return ssautils.FmtUnstructured(o) }
