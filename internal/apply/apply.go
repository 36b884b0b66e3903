// Package apply syncs objects to a cluster with server-side apply through
// fluxcd/pkg/ssa: dry-run diff, staged apply (CRDs and Namespaces first),
// CreateNamespace, and pruning from an inventory. It reports per-object
// outcomes in the words the CLI and UI share (created, configured,
// unchanged, pruned, skipped); it decides no policy.
package apply

import (
	"errors"

	"github.com/mlcd-dev/mlcd/internal/manifest"

	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldManager is mlcd's server-side apply field manager.
const FieldManager = "mlcd"

// createConcurrency bounds the concurrent creates of one Apply.
const createConcurrency = 8

// Applier applies and prunes objects.
type Applier struct {
	rm     *ssa.ResourceManager
	client client.Client
	reader client.Reader
	// namespaces: name → when EnsureNamespace last saw it exist.
	namespaces sync.Map
	// nsAsking: one question per namespace at a time, however many syncs
	// into it start together.
	nsAsking singleflight.Group
}

// New returns an Applier that writes and compares through c, which must
// read from the API server (a cache may lag behind the last apply and turn
// "unchanged" into "created"), and reads live objects for health through
// reader, which may be a cache.
func New(c client.Client, reader client.Reader) *Applier {
	poller := polling.NewStatusPoller(c, c.RESTMapper(), polling.Options{})
	rm := ssa.NewResourceManager(c, poller, ssa.Owner{Field: FieldManager, Group: "mlcd.io"})
	rm.SetConcurrency(8)
	return &Applier{rm: rm, client: c, reader: reader}
}

// Client is the applier's direct client (reads from the API server).
func (a *Applier) Client() client.Client { return a.client }

// Action is what a sync did, or would do, to one object: the words the
// controller, the CLI and the UI share.
type Action string

// Actions.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Skipped    Action = "skipped"
	Pruned     Action = "pruned"
	Deleted    Action = "deleted"
	Failed     Action = "failed"
)

// Changed reports whether the action wrote to the cluster.
func (a Action) Changed() bool { return a == Created || a == Configured || a == Pruned || a == Deleted }

// actionOf maps ssa's words to mlcd's.
func actionOf(a ssa.Action) Action {
	switch a {
	case ssa.CreatedAction:
		return Created
	case ssa.ConfiguredAction:
		return Configured
	case ssa.UnchangedAction:
		return Unchanged
	case ssa.DeletedAction:
		return Pruned
	case ssa.SkippedAction:
		return Skipped
	}
	return Action(a)
}

// Result is one object's outcome.
type Result struct {
	Object  *unstructured.Unstructured
	Action  Action
	Message string
	// Live is the object as the API server returned it from the write,
	// when the write was a create; nil otherwise.
	Live *unstructured.Unstructured
	// Before and After are, for a diff, the live object and the server's
	// dry-run of the apply (nil Before: it would be created).
	Before, After *unstructured.Unstructured
}

// ErrUnknownKind is a kind the API server does not serve (yet: its CRD
// may come from another app).
var ErrUnknownKind = errors.New("unknown kind")

// Normalize sets the destination namespace on namespaced objects that have
// none, clears it on cluster-scoped ones, and refuses kinds that neither
// the API server nor a CRD among objs defines (a missing CRD). Afterwards
// an object is namespaced exactly when it has a namespace.
func (a *Applier) Normalize(objs []*unstructured.Unstructured, namespace string) error {
	defined := definedKinds(objs)
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		namespaced := false
		m, err := a.client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
		switch {
		case err == nil:
			namespaced = m.Scope.Name() == meta.RESTScopeNameNamespace
		case meta.IsNoMatchError(err):
			scope, ok := defined[gvk.GroupKind()]
			if !ok {
				return fmt.Errorf("%s %s: %w %s (is its CRD installed?)", gvk.Kind, o.GetName(), ErrUnknownKind, gvk.GroupVersion().WithKind(gvk.Kind))
			}
			namespaced = scope == "Namespaced"
		default:
			return fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
		}
		switch {
		case !namespaced:
			o.SetNamespace("")
		case o.GetNamespace() != "":
		case namespace == "":
			return fmt.Errorf("%s %s has no namespace and the application has no destination.namespace", gvk.Kind, o.GetName())
		default:
			o.SetNamespace(namespace)
		}
	}
	return nil
}

// definedKinds maps the kinds that CRDs among objs define to their scope.
func definedKinds(objs []*unstructured.Unstructured) map[schema.GroupKind]string {
	out := map[schema.GroupKind]string{}
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" || o.GroupVersionKind().Group != "apiextensions.k8s.io" {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
		out[schema.GroupKind{Group: group, Kind: kind}] = scope
	}
	return out
}

// Known reports whether the API server serves the object's kind yet (a
// CRD applied by the same sync may not be established).
func (a *Applier) Known(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	_, err := a.client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	return err == nil
}

// Diff dry-runs every object and returns those that would change, with the
// action ("created" or "configured"). Defaulted fields make no noise: the
// comparison is between the live object and the server's dry-run result.
func (a *Applier) Diff(ctx context.Context, objs []*unstructured.Unstructured) ([]Result, error) {
	var out []Result
	missingNS := map[string]bool{}
	for _, o := range objs {
		if !a.Known(o) { // its CRD is in the source but not applied yet
			out = append(out, Result{Object: o, Action: Created})
			continue
		}
		if ns := o.GetNamespace(); ns != "" {
			missing, seen := missingNS[ns]
			if !seen {
				var n corev1.Namespace
				err := a.client.Get(ctx, client.ObjectKey{Name: ns}, &n)
				missing = apierrors.IsNotFound(err)
				missingNS[ns] = missing
			}
			if missing { // nothing exists there yet: a dry run cannot be made
				out = append(out, Result{Object: o, Action: Created})
				continue
			}
		}
		entry, before, after, err := a.rm.Diff(ctx, o, ssa.DiffOptions{})
		if err != nil {
			if ctx.Err() != nil || isTransport(err) {
				return nil, fmt.Errorf("diff %s: %s", describe(o), manifest.OneLine(err))
			}
			// The API server refuses this object (admission, validation):
			// it is out of sync, with the reason; the others still compare.
			out = append(out, Result{Object: o, Action: Configured, Message: "dry run refused: " + manifest.OneLine(err)})
			continue
		}
		if entry.Action != ssa.UnchangedAction && entry.Action != ssa.SkippedAction {
			out = append(out, Result{Object: o, Action: actionOf(entry.Action), Before: before, After: after})
		}
	}
	return out, nil
}

// Apply applies the objects (Namespaces and CRDs first) and returns each
// object's outcome. Objects that do not exist yet are created with one
// server-side apply each; existing ones go through ssa, which dry-runs and
// writes only what differs. live, when not nil, holds the caller's read
// of each object by manifest.Key (nil: missing), so Apply reads nothing
// again.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured, live map[string]*unstructured.Unstructured) ([]Result, error) {
	// Namespaces, CRDs and classes first, and the Namespaces and CRDs ready,
	// so the objects that need them can be created.
	var defs, rest []*unstructured.Unstructured
	for _, o := range objs {
		if ssautils.IsClusterDefinition(o) || ssautils.IsClassDefinition(o) {
			defs = append(defs, o)
		} else {
			rest = append(rest, o)
		}
	}
	out, err := a.applyAll(ctx, defs, true)
	if err != nil {
		return out, err
	}
	var existing, missing []*unstructured.Unstructured
	for _, o := range rest {
		// The cache is enough to find objects that do not exist yet: if it
		// lags and the object exists, the apply below is still correct
		// (server-side apply is idempotent), only reported as created.
		if l, ok := live[manifest.Key(o)]; ok {
			if l == nil {
				missing = append(missing, o)
			} else {
				existing = append(existing, o)
			}
			continue
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		err := a.reader.Get(ctx, client.ObjectKeyFromObject(o), got)
		if apierrors.IsNotFound(err) {
			missing = append(missing, o)
		} else {
			existing = append(existing, o)
		}
	}
	// Creates are independent of each other (Namespaces and CRDs, which
	// others may need, were applied above) and run concurrently, except
	// that an autoscaler comes after what it scales: the HPA controller
	// reads its target as soon as the HPA exists, and one created first
	// reports FailedGetScale (the app Degraded) until its next resync.
	var targets, scalers []*unstructured.Unstructured
	for _, o := range missing {
		if _, scales, _ := unstructured.NestedMap(o.Object, "spec", "scaleTargetRef"); scales {
			scalers = append(scalers, o)
		} else {
			targets = append(targets, o)
		}
	}
	var createErrs []error
	for _, group := range [][]*unstructured.Unstructured{targets, scalers} {
		res, exist, errs := a.create(ctx, group)
		out, existing, createErrs = append(out, res...), append(existing, exist...), append(createErrs, errs...)
	}
	// An object the API server refuses (admission, validation) does not
	// hold back the others: they are applied, and the error names each
	// refused one.
	res, err := a.applyAll(ctx, existing, false)
	return append(out, res...), oneLine(append(createErrs, err)...)
}

// create creates the objects concurrently, each with one server-side
// apply, and returns the created ones, those that turned out to exist
// (the cache lagged: they go through the apply of existing objects) and
// the errors.
func (a *Applier) create(ctx context.Context, objs []*unstructured.Unstructured) ([]Result, []*unstructured.Unstructured, []error) {
	created := make([]*unstructured.Unstructured, len(objs))
	exists := make([]bool, len(objs))
	errs := make([]error, len(objs))
	var g errgroup.Group
	g.SetLimit(createConcurrency)
	for i, o := range objs {
		g.Go(func() error {
			c := o.DeepCopy()
			if err := a.client.Patch(ctx, c, client.Apply, client.FieldOwner(FieldManager)); err != nil {
				if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
					exists[i] = true
					return nil
				}
				errs[i] = fmt.Errorf("apply: %s created failed: %s%s", describe(o), manifest.OneLine(err), rbacHint(err))
				return nil
			}
			created[i] = c
			return nil
		})
	}
	_ = g.Wait() // every create's error is in errs
	var out []Result
	var existing []*unstructured.Unstructured
	for i, o := range objs {
		switch {
		case created[i] != nil:
			out = append(out, Result{Object: o, Action: Created, Live: created[i]})
		case exists[i]:
			existing = append(existing, o)
		}
	}
	return out, existing, errs
}

// rbacHint says what a refusal by RBAC means: the identity mlcd runs as
// (deploy/'s ServiceAccount) may not write that kind.
func rbacHint(err error) string {
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "cannot ") {
		return "" // admission policies answer Forbidden too; they say why themselves
	}
	return " (mlcd's RBAC does not allow writing this kind: add it to the ClusterRole mlcd-apply, see deploy/README.md)"
}

// isTransport reports an error that says nothing about the object: the API
// server did not answer (timeouts, connection errors, 5xx, throttling).
func isTransport(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return true
	}
	return apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) || apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err)
}

// oneLine joins the non-nil errors with "; " (nil when there are none):
// conditions and events stay one line.
func oneLine(errs ...error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// applyAll applies through ssa, which dry-runs each object and writes
// only those that differ. With wait set, it then waits (until ctx ends or
// DefinitionTimeout) for the Namespaces and CRDs among them to be ready.
func (a *Applier) applyAll(ctx context.Context, objs []*unstructured.Unstructured, wait bool) ([]Result, error) {
	if len(objs) == 0 {
		return nil, nil
	}
	var out []Result
	opts := ssa.DefaultApplyOptions()
	opts.Force = false
	cs, err := a.rm.ApplyAll(ctx, objs, opts)
	if err != nil && !wait && len(objs) > 1 {
		// ssa dry-runs the whole set first, so one refused object stops
		// all: apply one by one, so the others still go and each refused
		// one is named with its reason.
		var errs []error
		for _, o := range objs {
			e, err := a.rm.Apply(ctx, o, opts)
			if err != nil {
				errs = append(errs, fmt.Errorf("apply: %s%s", manifest.OneLine(err), rbacHint(err)))
				continue
			}
			out = append(out, Result{Object: o, Action: actionOf(e.Action)})
		}
		return out, oneLine(errs...)
	}
	if cs != nil {
		byKey := map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			byKey[describe(o)] = o
		}
		for _, e := range cs.Entries {
			out = append(out, Result{Object: byKey[e.Subject], Action: actionOf(e.Action)})
		}
	}
	if err != nil {
		return out, fmt.Errorf("apply: %s%s", manifest.OneLine(err), rbacHint(err))
	}
	if wait {
		var defs []*unstructured.Unstructured
		for _, o := range objs {
			if ssautils.IsClusterDefinition(o) {
				defs = append(defs, o)
			}
		}
		set := object.UnstructuredSetToObjMetadataSet(defs)
		// ssa's own staged apply waits without a context; this wait ends
		// with the reconcile (a stopping controller does not hang on a
		// Namespace that is being deleted).
		if err := a.rm.WaitForSetWithContext(ctx, set, ssa.WaitOptions{Interval: 500 * time.Millisecond, Timeout: DefinitionTimeout}); err != nil {
			return out, fmt.Errorf("apply: waiting for %s: %s", describeAll(defs), manifest.OneLine(err))
		}
	}
	return out, nil
}

// DefinitionTimeout bounds the wait for a source's Namespaces and CRDs.
const DefinitionTimeout = time.Minute

func describeAll(objs []*unstructured.Unstructured) string {
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = describe(o)
	}
	return strings.Join(names, ", ")
}
