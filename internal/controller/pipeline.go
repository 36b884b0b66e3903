package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/desired"
	"github.com/mlcd-dev/mlcd/internal/registry"
	gitsource "github.com/mlcd-dev/mlcd/internal/source"
)

// pipeline is the straight line of one reconcile: project → source →
// desired state → model governance → sync. Each step sets at most one
// failure.
func (r *ApplicationReconciler) pipeline(ctx context.Context, app *v1alpha1.Application) (ctrl.Result, *stepError) {
	src := app.SourceOf()
	if src == nil || src.RepoURL == "" {
		return ctrl.Result{}, failPermanent(v1alpha1.ConditionInvalidSpecError, "spec.source.repoURL is required")
	}
	// Project rules before anything is read from Git or written.
	proj, serr := r.projectOf(ctx, app)
	if serr != nil {
		return ctrl.Result{}, serr
	}
	if serr := r.permitted(app, proj, src); serr != nil {
		return ctrl.Result{}, serr
	}
	if ctx, serr = r.target(ctx, app, proj); serr != nil {
		return ctrl.Result{}, serr
	}
	d, serr := r.desiredOf(ctx, app, proj, src)
	if serr != nil {
		return ctrl.Result{}, serr
	}
	if len(d.revs) == 0 {
		r.noticeHead(ctx, app, src, d.sha)
	}
	app.Status.SourceType = d.st.Rendered.Type
	markModel(app, d.gov)
	if serr := r.watchKinds(ctx, d.st); serr != nil {
		return ctrl.Result{}, serr
	}
	return r.sync(ctx, app, syncInput{src: src, sha: d.sha, revs: d.revs, objs: d.objs, hooks: d.hooks, gov: d.gov, root: d.st.Root})
}

// desiredApp is what Git says an app runs at the revision it resolves:
// one answer for the sync and for the diffs (the API's and `mlcd app
// diff`), so a diff predicts the sync — multi-source apps with `$ref`
// value files, hooks kept apart, lineage and shard labels stamped alike.
type desiredApp struct {
	sha   string
	revs  []string // a multi-source app's revisions, one per source
	st    *desired.State
	gov   *governed
	objs  []*unstructured.Unstructured // resources
	hooks []*unstructured.Unstructured // hooks, run around the sync
}

// desiredOf resolves, renders, governs and stamps app's desired state
// (proj and the target in ctx already checked).
func (r *ApplicationReconciler) desiredOf(ctx context.Context, app *v1alpha1.Application, proj *v1alpha1.AppProject, src *v1alpha1.ApplicationSource) (*desiredApp, *stepError) {
	d := &desiredApp{}
	var serr *stepError
	if app.Spec.Source == nil && len(app.Spec.Sources) > 1 {
		if d.st, d.revs, serr = r.buildSources(ctx, app, proj); serr != nil {
			return nil, serr
		}
		d.sha = strings.Join(d.revs, ",")
	} else {
		if d.sha, serr = r.revision(ctx, app, proj, src); serr != nil {
			return nil, serr
		}
		if d.st, serr = r.build(ctx, app, proj, *src, d.sha, nil, ""); serr != nil {
			return nil, serr
		}
	}
	if d.gov, serr = r.governance(ctx, app, d.st.Root, d.st.Rendered); serr != nil {
		return nil, serr
	}
	if d.gov != nil {
		if err := r.resolve(ctx, d.gov); err != nil && !errors.Is(err, registry.ErrNotFound) {
			// Without the run id the lineage is incomplete: the gate
			// decides whether anything may be applied.
			log.FromContext(ctx).Info("model version not resolved", "app", app.Namespace+"/"+app.Name, "error", err.Error())
		}
		stampLineage(d.st.Objects, d.gov)
	}
	r.stampShard(d.st.Objects)
	d.objs, d.hooks = splitHooks(d.st.Objects)
	return d, nil
}

// build is the desired state of one source at rev.
func (r *ApplicationReconciler) build(ctx context.Context, app *v1alpha1.Application, proj *v1alpha1.AppProject, src v1alpha1.ApplicationSource, rev string, refs map[string]string, refsKey string) (*desired.State, *stepError) {
	in := desired.Input{
		Owner: app.Namespace + "/" + app.Name, AppName: app.Name,
		Source: src, Destination: destinationOf(ctx, app), Revision: rev, Project: proj, Refs: refs, RefsKey: refsKey,
		CredentialsFor: func(ctx context.Context, repoURL string) (gitsource.Credentials, error) {
			return r.repoCredentials(ctx, proj.Name, repoURL)
		},
		GeneratePaths: app.Annotations[v1alpha1.ManifestGeneratePathsAnnotation],
	}
	if src.Chart != "" {
		creds, err := r.repoCredentials(ctx, proj.Name, src.RepoURL)
		if err != nil {
			return nil, failTransient(v1alpha1.ConditionComparisonError, "read repository credentials: %s", err)
		}
		in.Credentials = creds
	}
	st, err := r.engine.Build(ctx, in)
	if err != nil {
		return nil, fromDesired(err)
	}
	if err := clusterPermits(ctx, st.Objects); err != nil {
		return nil, failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
	}
	return st, nil
}

// buildSources is the desired state of a multi-source app, as Argo CD
// composes it: every source is resolved; a source with `ref` lends its
// checkout to the others' `$ref/…` value files (and is rendered too only
// when it names a path or chart); the objects of all rendered sources
// form the app. The first rendered source's tree and values serve the
// model governance, so the version is read from wherever the values came
// from.
func (r *ApplicationReconciler) buildSources(ctx context.Context, app *v1alpha1.Application, proj *v1alpha1.AppProject) (*desired.State, []string, *stepError) {
	srcs := app.Spec.Sources
	revs := make([]string, len(srcs))
	refs := map[string]string{}
	for i := range srcs {
		rev, serr := r.revision(ctx, app, proj, &srcs[i])
		if serr != nil {
			return nil, nil, serr
		}
		revs[i] = rev
		if srcs[i].Ref == "" {
			continue
		}
		if srcs[i].Chart != "" {
			return nil, nil, failPermanent(v1alpha1.ConditionInvalidSpecError, "spec.sources[%d]: a ref source must be a Git repository", i)
		}
		root, err := r.engine.Sources.Checkout(ctx, srcs[i].RepoURL, rev)
		if err != nil {
			return nil, nil, failTransient(v1alpha1.ConditionComparisonError, "spec.sources[%d] (ref %s): %s", i, srcs[i].Ref, err)
		}
		refs[srcs[i].Ref] = root
	}
	key := strings.Join(revs, ",")
	var out *desired.State
	for i, s := range srcs {
		if s.Ref != "" && s.Path == "" && s.Chart == "" {
			continue // only lends its files
		}
		st, serr := r.build(ctx, app, proj, s, revs[i], refs, key)
		if serr != nil {
			serr.msg = fmt.Sprintf("spec.sources[%d]: %s", i, serr.msg)
			return nil, nil, serr
		}
		if out == nil {
			out = &desired.State{Revision: key, Root: st.Root, Rendered: st.Rendered}
		}
		out.Objects = append(out.Objects, st.Objects...)
	}
	if out == nil {
		return nil, nil, failPermanent(v1alpha1.ConditionInvalidSpecError, "spec.sources: no source names a path or chart to render")
	}
	return out, revs, nil
}

// permitted checks the app's source repositories against its project.
// The destination is checked where it is resolved (target); objects by
// the desired-state step.
func (r *ApplicationReconciler) permitted(app *v1alpha1.Application, proj *v1alpha1.AppProject, src *v1alpha1.ApplicationSource) *stepError {
	for _, s := range app.Spec.Sources {
		if err := proj.PermitsSource(s.RepoURL); err != nil {
			return failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
		}
	}
	if err := proj.PermitsSource(src.RepoURL); err != nil {
		return failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
	}
	return nil // the destination: target
}

// revision resolves the commit to sync and checks that it may be synced:
// not undone by a revert, signed as the project requires.
func (r *ApplicationReconciler) revision(ctx context.Context, app *v1alpha1.Application, proj *v1alpha1.AppProject, src *v1alpha1.ApplicationSource) (string, *stepError) {
	_, refresh := app.Annotations[v1alpha1.RefreshAnnotation]
	refresh = r.takeRefresh(types.NamespacedName{Namespace: app.Namespace, Name: app.Name}) || refresh
	creds, err := r.repoCredentials(ctx, proj.Name, src.RepoURL)
	if err != nil {
		return "", failTransient(v1alpha1.ConditionComparisonError, "read repository credentials: %s", err)
	}
	sha, err := r.engine.Resolve(ctx, *src, creds, refresh)
	if err != nil {
		return "", fromDesired(err)
	}
	if slices.Contains(reverted(app), sha) {
		return "", failPermanent(v1alpha1.ConditionComparisonError, "revision %s was rolled back by a revert commit and is not applied again (stale refresh?); push a new commit to deploy it", v1alpha1.ShortSHA(sha))
	}
	if src.Chart != "" {
		return sha, nil // a chart version: no commit to check
	}
	if serr := r.verifySignature(ctx, proj, src.RepoURL, sha); serr != nil {
		return "", serr
	}
	return sha, nil
}

// watchKinds watches every kind the app deploys, once per kind. A kind
// defined by a CRD of this source is watched from the reconcile after the
// CRD is established.
func (r *ApplicationReconciler) watchKinds(ctx context.Context, st *desired.State) *stepError {
	t, _ := ctx.Value(targetKey{}).(*target)
	for _, o := range st.Objects {
		if !r.applierOf(ctx).Known(o) {
			continue
		}
		watch := r.watch
		if t != nil && t.remote != nil {
			watch = func(gvk schema.GroupVersionKind) error { return r.watchRemote(t.remote, gvk) }
		}
		if err := watch(o.GroupVersionKind()); err != nil {
			return failTransient(v1alpha1.ConditionComparisonError, "watch %s: %s", o.GetKind(), err)
		}
	}
	return nil
}

// fromDesired turns a desired-state error into a step error.
func fromDesired(err error) *stepError {
	var de *desired.Error
	if errors.As(err, &de) {
		return stepFailure(string(de.Reason), de.Transient, v1alpha1.SyncStatusUnknown, "%s", de.Err)
	}
	return failTransient(v1alpha1.ConditionComparisonError, "%s", err)
}

// markModel keeps the app's model annotations equal to its governance.
func markModel(app *v1alpha1.Application, gov *governed) {
	keys := []string{v1alpha1.AppAnnotationModel, v1alpha1.AppAnnotationEnvironment, v1alpha1.AppAnnotationVersion}
	if gov == nil {
		for _, k := range keys {
			delete(app.Annotations, k)
		}
		return
	}
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	for i, v := range []string{gov.policy.Spec.RegisteredModel, gov.env.Name, gov.version} {
		app.Annotations[keys[i]] = v
	}
}
