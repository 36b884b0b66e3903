package controller

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/desired"
	gitsource "github.com/mlcd-dev/mlcd/internal/source"
)

// A reconcile whose fetch finds a new commit wakes, ahead of every other
// app, the apps of that repository and revision whose render inputs the
// commit touched (desired.InputPaths) — what a push webhook would have
// done. Without it, on a large fleet that polls, the changed app waits
// behind every other app's poll (each records the new revision in its
// status).
type heads struct {
	mu sync.Mutex
	// seen: repository URL (normalized) and target revision → the commit
	// a reconcile last resolved.
	seen map[string]string
}

// headKey names what a source follows: its repository and target revision.
func headKey(src *v1alpha1.ApplicationSource) string {
	return gitsource.RepoIdentity(src.RepoURL) + "@" + src.TargetRevision
}

// urgentPriority puts a woken app ahead of polls and watch events.
const urgentPriority = 100

// noticeHead records the commit app's source resolved to and, when it is
// new for that repository and revision, wakes the apps it concerns.
func (r *ApplicationReconciler) noticeHead(ctx context.Context, app *v1alpha1.Application, src *v1alpha1.ApplicationSource, sha string) {
	if src.Chart != "" {
		return
	}
	key := headKey(src)
	r.heads.mu.Lock()
	prev := r.heads.seen[key]
	r.heads.seen[key] = sha
	r.heads.mu.Unlock()
	if prev == "" || prev == sha {
		return
	}
	changed, ok := r.engine.Sources.ChangedFiles(src.RepoURL, prev, sha)
	if !ok {
		return // too large to list, or an old commit is gone: the polls follow
	}
	var list v1alpha1.ApplicationList
	if err := r.client.List(ctx, &list); err != nil {
		return
	}
	for i := range list.Items {
		a := &list.Items[i]
		s := a.SourceOf()
		if (a.Namespace == app.Namespace && a.Name == app.Name) || s == nil || s.Chart != "" || !r.namespaceWatched(a.Namespace) || !r.owns(a) || headKey(s) != key {
			continue
		}
		// The render's own answer: its path, the annotation's paths, the
		// shared charts and values files it reads from elsewhere. A
		// multi-source app's other sources decide too: it is woken.
		in := desired.Input{Source: *s, Revision: sha, GeneratePaths: a.Annotations[v1alpha1.ManifestGeneratePathsAnnotation]}
		if len(a.Spec.Sources) <= 1 && !r.engine.Touches(ctx, in, changed) {
			continue
		}
		// The fetch is fresh: the woken app resolves the new commit.
		select {
		case r.urgentCh <- event.TypedGenericEvent[*v1alpha1.Application]{Object: a}:
		default: // full: the app's own poll follows
		}
	}
}

// urgentHandler enqueues ahead of everything else (controller-runtime's
// priority queue; a plain queue just adds).
func urgentHandler() handler.TypedEventHandler[*v1alpha1.Application, reconcile.Request] {
	return handler.TypedFuncs[*v1alpha1.Application, reconcile.Request]{
		GenericFunc: func(_ context.Context, e event.TypedGenericEvent[*v1alpha1.Application], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: e.Object.Namespace, Name: e.Object.Name}}
			if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
				p := urgentPriority
				pq.AddWithOpts(priorityqueue.AddOpts{Priority: &p}, req)
				return
			}
			q.Add(req)
		},
	}
}
