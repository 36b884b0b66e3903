package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/internal/desired"
	"github.com/mlcd-dev/mlcd/internal/manifest"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/inventory"
	gitsource "github.com/mlcd-dev/mlcd/internal/source"
)

// Diff predicts what a sync of app would do, without writing: the same
// steps as a reconcile (project, revision, desired state, model lineage,
// ignoreDifferences and autoscalers), then a server-side dry run of each
// object. Objects that would change come back with their live and
// dry-run copies; stale inventory objects come back as Pruned (when the
// app prunes) or Skipped.
func (r *ApplicationReconciler) Diff(ctx context.Context, app *v1alpha1.Application) ([]apply.Result, error) {
	src := app.SourceOf()
	if src == nil || src.RepoURL == "" {
		return nil, failPermanent(v1alpha1.ConditionInvalidSpecError, "spec.source.repoURL is required")
	}
	proj, serr := r.projectOf(ctx, app)
	if serr != nil {
		return nil, serr
	}
	if serr := r.permitted(app, proj, src); serr != nil {
		return nil, serr
	}
	if ctx, serr = r.target(ctx, app, proj); serr != nil {
		return nil, serr
	}
	d, serr := r.desiredOf(ctx, app, proj, src)
	if serr != nil {
		return nil, serr
	}
	// status.resources is writable by whoever may write the app: only
	// inventory objects the project permits are read, and only those the
	// app's own tracking marks are reported.
	var stale []*unstructured.Unstructured
	for _, o := range inventory.Stale(app.Status.Resources, d.objs) {
		if desired.Permitted(proj, destinationOf(ctx, app), []*unstructured.Unstructured{o}) == nil {
			stale = append(stale, o)
		}
	}
	owner := app.Namespace + "/" + app.Name
	objs := d.objs
	live, serr := r.readLive(ctx, objs, stale)
	if serr != nil {
		return nil, serr
	}
	keepShard(objs, live)
	if err := respectOthers(app, objs, live, false); err != nil {
		return nil, err
	}
	out, err := r.applierOf(ctx).Diff(ctx, objs)
	if err != nil {
		return nil, err
	}
	for _, o := range stale {
		l := live.of(o)
		if l == nil || l.GetAnnotations()[manifest.AppAnnotation] != owner {
			continue
		}
		action := apply.Skipped
		if app.PruneEnabled() {
			action = apply.Pruned
		}
		out = append(out, apply.Result{Object: o, Action: action, Before: l})
	}
	return out, nil
}

// RevisionMetadata is a commit's author, date and message from the Git
// cache (the API's revision metadata and lineage).
func (r *ApplicationReconciler) RevisionMetadata(ctx context.Context, repoURL, sha string) (*gitsource.RevisionMetadata, error) {
	return r.engine.Sources.Metadata(ctx, repoURL, sha)
}
