package server

import (
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// getRollout answers GET /api/v1/applications/{name}/rollout: the app's
// ModelRollout (step, weights, ready pods per side, every measurement).
func (s *Server) getRollout(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	mr, err := s.rollout(r, who)
	if err != nil {
		return nil, err
	}
	mr.ManagedFields = nil
	return mr, nil
}

func (s *Server) rollout(r *http.Request, who *Identity) (*v1alpha1.ModelRollout, error) {
	app, err := s.app(r, who)
	if err != nil {
		return nil, err
	}
	mr := &v1alpha1.ModelRollout{}
	err = s.o.Client.Get(r.Context(), client.ObjectKey{Namespace: app.Namespace, Name: app.Name}, mr)
	if apierrors.IsNotFound(err) {
		return nil, &apiError{http.StatusNotFound, fmt.Sprintf("application %s/%s has no rollout (its environment rolls out without canary steps, or no model version changed yet)", app.Namespace, app.Name)}
	}
	return mr, err
}

// rolloutAction answers POST …/rollout/{action}: promote, abort or retry.
// It annotates the ModelRollout; the controller acts and removes the
// annotation.
func (s *Server) rolloutAction(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	action := r.PathValue("action")
	switch action {
	case "promote", "abort", "retry":
	default:
		return nil, &apiError{http.StatusBadRequest, fmt.Sprintf("unknown rollout action %q: promote, abort or retry", action)}
	}
	mr, err := s.rollout(r, who)
	if err != nil {
		return nil, err
	}
	switch {
	case action == "retry" && mr.Status.Phase != "Degraded":
		return nil, &apiError{http.StatusConflict, fmt.Sprintf("rollout of %s is %s: only an aborted (Degraded) rollout can be retried", mr.Spec.CanaryVersion, mr.Status.Phase)}
	case action == "retry" && mr.Status.RevertCommit != "":
		return nil, &apiError{http.StatusConflict, fmt.Sprintf("rollout of %s was reverted in Git by %s: push a new commit to roll it out again", mr.Spec.CanaryVersion, v1alpha1.ShortSHA(mr.Status.RevertCommit))}
	case action != "retry" && mr.Status.Phase != "Progressing" && mr.Status.Phase != "Paused":
		return nil, &apiError{http.StatusConflict, fmt.Sprintf("rollout of %s is %s: nothing to %s", mr.Spec.CanaryVersion, mr.Status.Phase, action)}
	}
	before := mr.DeepCopy()
	if mr.Annotations == nil {
		mr.Annotations = map[string]string{}
	}
	mr.Annotations[v1alpha1.RolloutActionAnnotation] = action
	if err := s.o.Client.Patch(r.Context(), mr, client.MergeFrom(before)); err != nil {
		return nil, err
	}
	mr.ManagedFields = nil
	return mr, nil
}
