package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/promote"
	"github.com/mlcd-dev/mlcd/internal/repocreds"
)

const maxReverted = 20

// recordRevert notes the commits that revert commits between the last
// synced revision (exclusive) and sha undid (an approval commit may sit on
// top of the revert). It reports whether it found any.
func (r *ApplicationReconciler) recordRevert(ctx context.Context, app *v1alpha1.Application, url, sha, since string) bool {
	c, err := r.engine.Sources.Commit(ctx, url, sha)
	if err != nil {
		return false
	}
	list := reverted(app)
	added := false
	for i := 0; i < 50 && c != nil && c.Hash.String() != since; i++ {
		if sha, ok := promote.RevertedBy(c.Message); ok && !slices.Contains(list, sha) {
			list = append(list, sha)
			added = true
		}
		if c.NumParents() == 0 {
			break
		}
		if c, err = c.Parent(0); err != nil {
			break
		}
	}
	if !added {
		return false
	}
	if len(list) > maxReverted {
		list = list[len(list)-maxReverted:]
	}
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	app.Annotations[v1alpha1.RevertedAnnotation] = strings.Join(list, ",")
	return true
}

func reverted(app *v1alpha1.Application) []string {
	v := app.Annotations[v1alpha1.RevertedAnnotation]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// revertIfDue writes the revert commit of a failed rollout's promotion
// (onFailure: revert, the default) once the stable side serves again:
// a fresh clone of the tracked branch, `git revert` of the newest commit
// that changed the environment's version (promote.Rollback, the same as
// `mlcd model rollback`), pushed. The revert reaches the cluster through
// the ordinary sync; the rollout stays Degraded, holding the failed
// version back, until then (also across restarts: the state is the
// ModelRollout).
func (r *ApplicationReconciler) revertIfDue(ctx context.Context, app *v1alpha1.Application, mr *v1alpha1.ModelRollout, sides []*side, restoring bool) {
	if mr.Spec.OnFailure == "abort" || mr.Status.RevertCommit != "" || mr.Status.RevertAttempts >= maxRevertAttempt {
		return
	}
	for _, s := range sides {
		if s.canary != nil {
			return // the stable side is not back yet
		}
	}
	if restoring {
		return // an InferenceService is not back on its stable spec yet
	}
	if at := mr.Status.RevertAttemptAt; at != nil && time.Since(at.Time) < revertBackoff(mr.Status.RevertAttempts) {
		return
	}
	mr.Status.RevertAttempts++
	mr.Status.RevertAttemptAt = ptr(metav1.Now())
	reason := fmt.Sprintf("mlcd: the canary rollout of %s %s in %s failed: %s", mr.Spec.Model, mr.Spec.CanaryVersion, mr.Spec.Environment, mr.Status.Message)
	res, err := r.revertInGit(ctx, app, mr, reason)
	if err != nil {
		mr.Status.RevertError = manifest.OneLine(err)
		r.event(app, eventWarning, "RevertFailed", "revert of %s %s in Git failed (attempt %d of %d): %s", mr.Spec.Model, mr.Spec.CanaryVersion, mr.Status.RevertAttempts, maxRevertAttempt, mr.Status.RevertError)
		return
	}
	mr.Status.RevertCommit, mr.Status.RevertError = res.Commit, ""
	r.noteAbort(ctx, app, mr)
	r.event(app, eventNormal, "Reverted", "pushed %s to %s: reverts %s (%s) after the failed rollout", v1alpha1.ShortSHA(res.Commit), res.Branch, v1alpha1.ShortSHA(res.Reverted), res.Subject)
	r.refreshSoon(types.NamespacedName{Namespace: app.Namespace, Name: app.Name})
}

// revertBackoff is the wait after attempt n: 2, 4, 8, 16 s.
func revertBackoff(n int) time.Duration { return time.Duration(1<<n) * time.Second }

// revertInGit reverts in a fresh clone of the rollout's branch, which
// must be the app's own repository (a ModelRollout is writable in the
// app's namespace; its repoURL is not trusted on its own).
func (r *ApplicationReconciler) revertInGit(ctx context.Context, app *v1alpha1.Application, mr *v1alpha1.ModelRollout, reason string) (*promote.RollbackResult, error) {
	var res *promote.RollbackResult
	remote, err := r.writeRemote(ctx, app, mr.Spec.RepoURL)
	if err != nil {
		return nil, err
	}
	err = promote.InClone(ctx, remote, mr.Spec.Branch, func(dir string) (err error) {
		res, err = promote.Rollback(ctx, promote.RollbackOptions{Push: promote.Push{Dir: dir, Signer: remote.Signer}, Model: mr.Spec.Model, Env: mr.Spec.Environment, Reason: reason})
		return err
	})
	return res, err
}

// refreshSoon makes the app's next reconcile fetch its repository (a
// revert was just pushed) and requeues it.
func (r *ApplicationReconciler) refreshSoon(key types.NamespacedName) {
	r.refreshMu.Lock()
	if r.refreshNext == nil {
		r.refreshNext = map[types.NamespacedName]bool{}
	}
	r.refreshNext[key] = true
	r.refreshMu.Unlock()
	r.requeueAfter(key, 100*time.Millisecond)
}

// takeRefresh reports (once) whether refreshSoon asked for a fetch.
func (r *ApplicationReconciler) takeRefresh(key types.NamespacedName) bool {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	ok := r.refreshNext[key]
	delete(r.refreshNext, key)
	return ok
}

// writeRemote is where a write for app goes (repocreds.WriteRemote),
// committed as the controller's configured identity.
func (r *ApplicationReconciler) writeRemote(ctx context.Context, app *v1alpha1.Application, repoURL string) (promote.Remote, error) {
	remote, err := repocreds.WriteRemote(ctx, r.client, r.Options.ControllerNamespace, app, repoURL)
	remote.Name, remote.Email = r.Options.CommitterName, r.Options.CommitterEmail
	return remote, err
}
