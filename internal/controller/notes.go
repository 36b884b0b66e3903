package controller

import (
	"context"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/promote"
)

// notes remembers which deployment notes were written (per app, the
// commit and version) and serialises the writes to one repository.
type notes struct {
	mu      sync.Mutex
	written map[string]string
	repos   map[string]*sync.Mutex
}

// recordNote writes, in the background, a note on the synced commit under
// refs/notes/mlcd of the app's repository — app, environment, model
// version, sync and health — once per app, commit and version: the seed's
// "deployment status visible in Git". It pushes with the repository's own
// credentials; a failure is an Event, and the next commit or version is
// noted again.
func (r *ApplicationReconciler) recordNote(ctx context.Context, app *v1alpha1.Application, g *governed, repoURL, branch, sha string) {
	if g == nil {
		return
	}
	r.writeNote(ctx, app, repoURL, branch, sha, promote.Note{Environment: g.env.Name, Model: g.policy.Spec.RegisteredModel, Version: g.version,
		Sync: app.Status.Sync.Status, Health: app.Status.Health.Status})
}

// noteAbort records on the commit whose canary failed that its rollout was
// aborted (and reverted), so the commit's note says why it does not run.
func (r *ApplicationReconciler) noteAbort(ctx context.Context, app *v1alpha1.Application, mr *v1alpha1.ModelRollout) {
	outcome := "aborted"
	if mr.Status.RevertCommit != "" {
		outcome = "aborted, reverted by " + v1alpha1.ShortSHA(mr.Status.RevertCommit)
	}
	r.writeNote(ctx, app, mr.Spec.RepoURL, mr.Spec.Branch, mr.Spec.Revision, promote.Note{Environment: mr.Spec.Environment, Model: mr.Spec.Model, Version: mr.Spec.CanaryVersion,
		Health: v1alpha1.HealthDegraded, Rollout: outcome})
}

// writeNote writes note (app and time filled in) on sha, once per app,
// commit and note content, in the background.
func (r *ApplicationReconciler) writeNote(ctx context.Context, app *v1alpha1.Application, repoURL, branch, sha string, note promote.Note) {
	if r.Options.NoGitNotes || sha == "" || strings.Contains(sha, ",") {
		return // a multi-source app's revision is no single commit
	}
	key := app.Namespace + "/" + app.Name
	note.App = key
	mark := sha + "@" + note.Version + "@" + note.Rollout
	r.notes.mu.Lock()
	if r.notes.written == nil {
		r.notes.written, r.notes.repos = map[string]string{}, map[string]*sync.Mutex{}
	}
	if r.notes.written[key] == mark {
		r.notes.mu.Unlock()
		return
	}
	r.notes.written[key] = mark
	lock := r.notes.repos[repoURL]
	if lock == nil {
		lock = &sync.Mutex{}
		r.notes.repos[repoURL] = lock
	}
	r.notes.mu.Unlock()
	remote, err := r.writeRemote(ctx, app, repoURL)
	if err != nil {
		return
	}
	note.At = time.Now()
	r.remotes.mu.Lock()
	base := r.remotes.base
	r.remotes.mu.Unlock()
	if base == nil {
		base = context.WithoutCancel(ctx)
	}
	evApp := app.DeepCopy()
	go func() {
		ctx, cancel := context.WithTimeout(base, 2*time.Minute)
		defer cancel()
		lock.Lock()
		defer lock.Unlock()
		err := promote.InClone(ctx, remote, branch, func(dir string) error {
			return promote.AddNote(ctx, dir, sha, note)
		})
		if err != nil {
			// Not retried for this commit and version (a repository
			// that takes no writes would be cloned at every poll).
			log.FromContext(ctx).Info("deployment note not written", "app", key, "commit", sha, "error", err.Error())
			r.event(evApp, eventWarning, "GitNoteFailed", "deployment note on %s not written to %s: %s", v1alpha1.ShortSHA(sha), promote.NotesRef, err)
		}
	}()
}
