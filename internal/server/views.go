package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/modelpolicy"
	"github.com/mlcd-dev/mlcd/internal/promote"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/repocreds"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// Revisions reads commit metadata (the controller's Git cache).
type Revisions interface {
	RevisionMetadata(ctx context.Context, repoURL, sha string) (*RevisionMetadata, error)
}

// RevisionMetadata is a commit as the UI shows it (Argo CD's
// …/revisions/{revision}/metadata).
type RevisionMetadata = source.RevisionMetadata

// ModelRegistry is what the model views read.
type ModelRegistry interface {
	AllModelVersions(ctx context.Context, o registry.SearchOptions) ([]registry.ModelVersion, error)
	VersionMetrics(ctx context.Context, v *registry.ModelVersion) (map[string]float64, error)
}

// appEvents answers GET …/events: the Kubernetes Events on the app, newest
// first.
func (s *Server) appEvents(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	app, err := s.app(r, who)
	if err != nil {
		return nil, err
	}
	var list eventsv1.EventList
	if err := s.reader().List(r.Context(), &list, client.InNamespace(app.Namespace)); err != nil {
		return nil, err
	}
	type event struct {
		Type   string    `json:"type"`
		Reason string    `json:"reason"`
		Note   string    `json:"note"`
		Time   time.Time `json:"time"`
		Count  int32     `json:"count"`
	}
	var out []event
	for _, e := range list.Items {
		if e.Regarding.Kind != "Application" || e.Regarding.Name != app.Name {
			continue
		}
		t := e.EventTime.Time
		count := int32(1)
		if e.Series != nil {
			t, count = e.Series.LastObservedTime.Time, e.Series.Count
		}
		if t.IsZero() {
			t = e.CreationTimestamp.Time
		}
		out = append(out, event{Type: e.Type, Reason: e.Reason, Note: e.Note, Time: t, Count: count})
	}
	slices.SortFunc(out, func(a, b event) int { return b.Time.Compare(a.Time) })
	return map[string]any{"items": out}, nil
}

// reader reads past the cache where a cache of every object of a kind
// would be waste (Events, Pods).
func (s *Server) reader() client.Reader {
	if s.o.APIReader != nil {
		return s.o.APIReader
	}
	return s.o.Client
}

// revisionMetadata answers GET …/revisions/{revision}/metadata.
func (s *Server) revisionMetadata(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	app, err := s.app(r, who)
	if err != nil {
		return nil, err
	}
	if s.o.Revisions == nil {
		return nil, &apiError{http.StatusNotImplemented, "this server reads no Git repositories"}
	}
	src := app.SourceOf()
	if src == nil {
		return nil, &apiError{http.StatusNotFound, "the application has no source"}
	}
	rev := r.PathValue("revision")
	if !isSHA(rev) {
		return nil, &apiError{http.StatusBadRequest, "revision must be a commit SHA"}
	}
	md, err := s.o.Revisions.RevisionMetadata(r.Context(), src.RepoURL, rev)
	if err != nil {
		return nil, &apiError{http.StatusNotFound, fmt.Sprintf("revision %s: %s", v1alpha1.ShortSHA(rev), err)}
	}
	return md, nil
}

func isSHA(s string) bool {
	if len(s) < 7 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// Lineage is commit → model version → registry run → pods.
type Lineage struct {
	// Revision is the commit that last changed what the app applies (the
	// one that deployed what runs); ComparedRevision the commit the app
	// was last compared at (status.sync.revision), which moves with every
	// commit to the repository.
	Revision         string            `json:"revision"`
	ComparedRevision string            `json:"comparedRevision,omitempty"`
	Commit           *RevisionMetadata `json:"commit,omitempty"`
	Model            string            `json:"model,omitempty"`
	Version          string            `json:"version,omitempty"`
	RunID            string            `json:"runID,omitempty"`
	Workloads        []Workload        `json:"workloads"`
}

// Workload is one model-serving workload and its pods.
type Workload struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	RunID     string `json:"runID"`
	Pods      []Pod  `json:"pods"`
}

// Pod is a pod of a workload.
type Pod struct {
	Name  string `json:"name"`
	Phase string `json:"phase"`
	Node  string `json:"node"`
	Ready bool   `json:"ready"`
}

// lineage answers GET …/lineage.
func (s *Server) lineage(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	app, err := s.app(r, who)
	if err != nil {
		return nil, err
	}
	out := &Lineage{Revision: app.DeployedRevision(), ComparedRevision: app.Status.Sync.Revision, Model: app.Annotations[v1alpha1.AppAnnotationModel], Version: app.Annotations[v1alpha1.AppAnnotationVersion], Workloads: []Workload{}}
	if src := app.SourceOf(); src != nil && s.o.Revisions != nil && out.Revision != "" {
		out.Commit, _ = s.o.Revisions.RevisionMetadata(r.Context(), src.RepoURL, out.Revision)
	}
	for _, rs := range app.Status.Resources {
		if rs.Group != "apps" || rs.Kind != "Deployment" || rs.Health == nil {
			continue
		}
		for _, name := range []string{rs.Name, rs.Name + v1alpha1.CanarySuffix} {
			var d appsv1.Deployment
			if err := s.reader().Get(r.Context(), client.ObjectKey{Namespace: rs.Namespace, Name: name}, &d); err != nil {
				continue
			}
			// status.resources is the tenant's to write: only a
			// Deployment this app's own tracking marks is shown.
			if d.Annotations[manifest.AppAnnotation] != app.Namespace+"/"+app.Name {
				continue
			}
			w := Workload{Kind: "Deployment", Namespace: d.Namespace, Name: d.Name, Version: d.Annotations[v1alpha1.AnnotationModelVersion], Revision: out.Revision, RunID: d.Annotations[v1alpha1.AnnotationRunID]}
			out.RunID = cmp.Or(out.RunID, w.RunID)
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil {
				continue
			}
			var pods corev1.PodList
			if err := s.reader().List(r.Context(), &pods, client.InNamespace(d.Namespace), client.MatchingLabelsSelector{Selector: sel}); err == nil {
				for _, p := range pods.Items {
					if !ownedBy(p, d) {
						continue
					}
					w.Pods = append(w.Pods, Pod{Name: p.Name, Phase: string(p.Status.Phase), Node: p.Spec.NodeName, Ready: podReady(p)})
				}
			}
			out.Workloads = append(out.Workloads, w)
		}
	}
	return out, nil
}

// ownedBy: the pod's ReplicaSet is the Deployment's (its name prefix; the
// canary's pods also match the stable selector).
func ownedBy(p corev1.Pod, d appsv1.Deployment) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == "ReplicaSet" && strings.HasPrefix(o.Name, d.Name+"-") && !strings.Contains(strings.TrimPrefix(o.Name, d.Name+"-"), "-") {
			return true
		}
	}
	return false
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ModelView is a registered model as the UI's model page shows it.
type ModelView struct {
	Name         string            `json:"name"`
	Environments []EnvironmentView `json:"environments"`
	Versions     []VersionView     `json:"versions"`
}

// EnvironmentView is one environment of a model: the app deploying it,
// the version Git names, what runs, and why it is blocked if it is.
type EnvironmentView struct {
	Environment string `json:"environment"`
	App         string `json:"app"`
	Version     string `json:"version"`
	Sync        string `json:"sync"`
	Health      string `json:"health"`
	Blocked     string `json:"blocked,omitempty"`
}

// VersionView is a registry version with its metrics and aliases.
type VersionView struct {
	Version string             `json:"version"`
	Tag     string             `json:"tag,omitempty"`
	Status  string             `json:"status"`
	Aliases []string           `json:"aliases,omitempty"`
	RunID   string             `json:"runID,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Created time.Time          `json:"created"`
}

// models answers GET /api/v1/models: every model an app the token sees
// deploys, with its environments; GET /api/v1/models/{name} adds the
// registry's versions.
func (s *Server) models(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	apps, err := s.visibleApps(r.Context(), who)
	if err != nil {
		return nil, err
	}
	byModel := map[string]*ModelView{}
	for _, a := range apps {
		model := a.Annotations[v1alpha1.AppAnnotationModel]
		if model == "" {
			continue
		}
		m := byModel[model]
		if m == nil {
			m = &ModelView{Name: model, Environments: []EnvironmentView{}, Versions: []VersionView{}}
			byModel[model] = m
		}
		env := EnvironmentView{Environment: a.Annotations[v1alpha1.AppAnnotationEnvironment], App: a.Namespace + "/" + a.Name, Version: a.Annotations[v1alpha1.AppAnnotationVersion], Sync: a.Status.Sync.Status, Health: a.Status.Health.Status}
		for _, c := range a.Status.Conditions {
			if c.Type == v1alpha1.ConditionModelGate || c.Type == v1alpha1.ConditionRolloutAborted || c.Type == v1alpha1.ConditionSyncError {
				env.Blocked = c.Message
			}
		}
		m.Environments = append(m.Environments, env)
	}
	name := r.PathValue("name")
	if name == "" {
		out := make([]*ModelView, 0, len(byModel))
		for _, m := range byModel {
			out = append(out, m)
		}
		slices.SortFunc(out, func(a, b *ModelView) int { return strings.Compare(a.Name, b.Name) })
		return map[string]any{"items": out}, nil
	}
	m := byModel[name]
	if m == nil {
		return nil, &apiError{http.StatusNotFound, fmt.Sprintf("no application the token sees deploys model %s", name)}
	}
	if s.o.Registry != nil {
		versions, err := s.o.Registry.AllModelVersions(r.Context(), registry.SearchOptions{Filter: fmt.Sprintf("name='%s'", strings.ReplaceAll(name, "'", ""))})
		if err != nil {
			return nil, fmt.Errorf("model registry: %w", err)
		}
		for _, v := range versions {
			vv := VersionView{Version: v.Version, Status: v.Status, Aliases: v.Aliases, RunID: v.RunID, Created: time.UnixMilli(v.CreationTimestamp)}
			vv.Tag, _ = v.Tag(registry.VersionTag)
			if metrics, err := s.o.Registry.VersionMetrics(r.Context(), &v); err == nil {
				vv.Metrics = metrics
			}
			m.Versions = append(m.Versions, vv)
		}
	}
	slices.SortFunc(m.Environments, func(a, b EnvironmentView) int { return strings.Compare(a.Environment, b.Environment) })
	return m, nil
}

// visibleApps lists the apps the token sees.
func (s *Server) visibleApps(ctx context.Context, who *Identity) ([]v1alpha1.Application, error) {
	var list v1alpha1.ApplicationList
	if err := s.o.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	var out []v1alpha1.Application
	for _, a := range list.Items {
		if s.served(a.Namespace) && who.Sees(a.Spec.Project) {
			out = append(out, a)
		}
	}
	return out, nil
}

// RollbackRequest is the body of POST …/rollback.
type RollbackRequest struct {
	Reason string `json:"reason"`
}

// RollbackResult says which commit reverted which.
type RollbackResult struct {
	Reverted string `json:"reverted"`
	Commit   string `json:"commit"`
	Subject  string `json:"subject"`
	Branch   string `json:"branch"`
}

// rollbackApp answers POST …/rollback: a `git revert` of the newest commit
// that changed the app's model version (a governed app) or its source
// path, pushed to the tracked branch with the reason in its message; the
// ordinary sync applies it, so Git says what runs.
func (s *Server) rollbackApp(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	var req RollbackRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return nil, &apiError{http.StatusBadRequest, "invalid JSON body: " + err.Error()}
		}
	}
	app, err := s.app(r, who)
	if err != nil {
		return nil, err
	}
	src := app.SourceOf()
	if src == nil {
		return nil, &apiError{http.StatusBadRequest, "the application has no source to revert in"}
	}
	reason := fmt.Sprintf("mlcd: rolled back by %s", who.Name)
	if req.Reason != "" {
		reason += ": " + strings.TrimSpace(req.Reason)
	}
	opts := promote.RollbackOptions{Reason: reason}
	if m, e := app.Annotations[v1alpha1.AppAnnotationModel], app.Annotations[v1alpha1.AppAnnotationEnvironment]; m != "" && e != "" {
		// The annotations are the controller's record, but whoever writes
		// the app can write them too: the model must be one the app's
		// project may govern.
		if err := s.mayGovern(r.Context(), app, m); err != nil {
			return nil, err
		}
		opts.Model, opts.Env = m, e
	} else {
		opts.Path = src.Path
	}
	remote, err := s.writeRemote(r.Context(), app, src.RepoURL)
	if err != nil {
		return nil, err
	}
	var res *promote.RollbackResult
	err = promote.InClone(r.Context(), remote, src.TargetRevision, func(dir string) (err error) {
		opts.Dir, opts.Signer = dir, remote.Signer
		res, err = promote.Rollback(r.Context(), opts)
		return err
	})
	if err != nil {
		return nil, &apiError{http.StatusConflict, "rollback: " + err.Error()}
	}
	before := app.DeepCopy()
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	app.Annotations[v1alpha1.RefreshAnnotation] = "normal"
	if err := s.o.Client.Patch(r.Context(), app, client.MergeFrom(before)); err != nil {
		return nil, err
	}
	return RollbackResult{Reverted: res.Reverted, Commit: res.Commit, Subject: res.Subject, Branch: res.Branch}, nil
}

// mayGovern refuses a model the app's project is not mapped to
// (modelpolicy.MayGovern over the control-plane namespace's AppProjects
// and ModelPolicies).
func (s *Server) mayGovern(ctx context.Context, app *v1alpha1.Application, model string) error {
	var projects v1alpha1.AppProjectList
	if err := s.reader().List(ctx, &projects, client.InNamespace(s.o.Namespace)); err != nil {
		return err
	}
	var policies v1alpha1.ModelPolicyList
	if err := s.reader().List(ctx, &policies, client.InNamespace(s.o.Namespace)); err != nil && !meta.IsNoMatchError(err) {
		return err
	}
	if err := modelpolicy.MayGovern(cmp.Or(app.Spec.Project, v1alpha1.DefaultProject), model, projects.Items, policies.Items); err != nil {
		return &apiError{http.StatusForbidden, err.Error() + ": nothing is pushed"}
	}
	return nil
}

// writeRemote is the app's repository to push to (repocreds.WriteRemote):
// a write its project does not allow is 403, and nothing is pushed.
func (s *Server) writeRemote(ctx context.Context, app *v1alpha1.Application, repoURL string) (promote.Remote, error) {
	remote, err := repocreds.WriteRemote(ctx, s.reader(), s.o.Namespace, app, repoURL)
	if errors.Is(err, repocreds.ErrWriteRefused) {
		return promote.Remote{}, &apiError{http.StatusForbidden, err.Error()}
	}
	return remote, err
}

// listAppSets answers GET /api/v1/applicationsets: the sets of the
// control-plane namespace with their generated apps the token sees.
func (s *Server) listAppSets(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	var sets v1alpha1.ApplicationSetList
	if err := s.o.Client.List(r.Context(), &sets, client.InNamespace(s.o.Namespace)); err != nil {
		return nil, err
	}
	apps, err := s.visibleApps(r.Context(), who)
	if err != nil {
		return nil, err
	}
	out := []AppSet{}
	name := r.PathValue("name")
	for _, set := range sets.Items {
		if name != "" && set.Name != name {
			continue
		}
		set.ManagedFields = nil
		v := AppSet{ApplicationSet: set, Applications: []string{}}
		for _, a := range apps {
			for _, o := range a.OwnerReferences {
				if o.Kind == "ApplicationSet" && o.UID == set.UID {
					v.Applications = append(v.Applications, a.Namespace+"/"+a.Name)
				}
			}
		}
		out = append(out, v)
	}
	if name != "" {
		if len(out) == 0 {
			return nil, &apiError{http.StatusNotFound, fmt.Sprintf("applicationset %s not found", name)}
		}
		return out[0], nil
	}
	return map[string]any{"items": out}, nil
}
