package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/promote"
	"github.com/mlcd-dev/mlcd/internal/rollout"
)

// Annotations the automatic promotion keeps on the source environment's
// Application.
const (
	// healthySinceAnnotation is "<version>=<RFC 3339 time>": since when
	// the app runs the version Synced and Healthy (rollout complete).
	healthySinceAnnotation = "mlcd.io/healthy-since"
	// promotedAnnotation is "<version>@<environment>": the promotion
	// written last, so it is written once.
	promotedAnnotation = "mlcd.io/promoted"
)

// promoteAfterSoak writes the promotion to the next environment once the
// version ran Healthy here for the soak time (spec.rollout.<env>.promotion):
// a commit on mlcd/promote/<model>/<version>/<env>, pushed for review, or
// on the tracked branch when the target environment says approval: none.
// The target's gates still apply when it syncs. Called when the app is
// Synced and Healthy at the governed version.
func (r *ApplicationReconciler) promoteAfterSoak(ctx context.Context, app *v1alpha1.Application, g *governed, src *v1alpha1.ApplicationSource) {
	spec := g.policy.Spec.Rollout[g.env.Name].Promotion
	if spec == nil {
		return
	}
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	mark := g.version + "@" + spec.To
	if app.Annotations[promotedAnnotation] == mark {
		return
	}
	// A rollout of this version must have completed (and not failed).
	mr := &v1alpha1.ModelRollout{}
	if err := r.client.Get(ctx, key, mr); err == nil && mr.Spec.CanaryVersion == g.version && mr.Status.Phase != rollout.PhaseHealthy {
		return
	} else if err != nil && client.IgnoreNotFound(err) != nil {
		return
	}
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	version, since, ok := strings.Cut(app.Annotations[healthySinceAnnotation], "=")
	at, err := time.Parse(time.RFC3339, since)
	if !ok || version != g.version || err != nil {
		app.Annotations[healthySinceAnnotation] = g.version + "=" + time.Now().UTC().Format(time.RFC3339)
		at = time.Now()
	}
	soak, _ := v1alpha1.ParseRolloutDuration(spec.After)
	if wait := time.Until(at.Add(soak)); wait > 0 {
		r.requeueAfter(key, wait+100*time.Millisecond)
		return
	}
	target, _ := g.policy.Environment(spec.To)
	direct := target.Approval == "none"
	branch := fmt.Sprintf("mlcd/promote/%s/%s/%s", g.policy.Spec.RegisteredModel, g.version, spec.To)
	var res *promote.Result
	remote, err := r.writeRemote(ctx, app, src.RepoURL)
	if err != nil {
		r.event(app, eventWarning, "PromotionFailed", "promotion of %s %s to %s not pushed: %s", g.policy.Spec.RegisteredModel, g.version, spec.To, err)
		return
	}
	err = promote.InClone(ctx, remote, src.TargetRevision, func(dir string) (err error) {
		res, err = promote.Promote(ctx, promote.Options{
			Push: promote.Push{Dir: dir, Signer: remote.Signer}, Model: g.policy.Spec.RegisteredModel, Version: g.version, Env: spec.To,
			Branch: branch, Direct: direct,
			Message: fmt.Sprintf("mlcd: %s ran %s Healthy in %s for %s (promotion.after)", g.policy.Spec.RegisteredModel, g.version, g.env.Name, soak),
		})
		return err
	})
	switch {
	case errors.Is(err, promote.ErrAlreadyAtVersion):
		app.Annotations[promotedAnnotation] = mark // nothing to promote
	case err != nil:
		r.event(app, eventWarning, "PromotionFailed", "promotion of %s %s to %s failed: %s", g.policy.Spec.RegisteredModel, g.version, spec.To, err)
		r.requeueAfter(key, time.Minute)
	default:
		app.Annotations[promotedAnnotation] = mark
		where := "for review on branch " + res.Branch
		if direct {
			where = "on " + res.Branch + " (approval: none)"
		}
		r.event(app, eventNormal, "Promoted", "promoted %s %s to %s: commit %s %s", g.policy.Spec.RegisteredModel, g.version, spec.To, v1alpha1.ShortSHA(res.Commit), where)
	}
}
