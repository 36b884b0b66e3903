package controller

import (
	"cmp"
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/gate"
	"github.com/mlcd-dev/mlcd/internal/modelpolicy"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/render"
	gitsource "github.com/mlcd-dev/mlcd/internal/source"
)

// ModelRegistry is what the controller needs of the registry: the gate's
// reads and the write-back of aliases and tags.
type ModelRegistry interface {
	gate.Registry
	SetAlias(ctx context.Context, name, alias, version string) error
	SetModelVersionTag(ctx context.Context, name, version, key, value string) error
}

// governed is an app under a ModelPolicy, at one model version.
type governed struct {
	policy  *v1alpha1.ModelPolicy
	env     v1alpha1.ModelEnvironment
	version string
	reg     *registry.ModelVersion
}

// modelState caches what the controller learnt from the registry, so an
// app at rest asks it nothing: registry versions are immutable once
// resolved, and an alias is written once per app, version and commit.
type modelState struct {
	mu          sync.Mutex
	resolved    map[string]*registry.ModelVersion
	writtenBack map[string]string
}

// governance finds the app's ModelPolicy, environment and the version it
// deploys (internal/modelpolicy answers; the checkout and the ModelPolicy
// objects of the control-plane namespace are what it reads). nil means
// the app is not governed.
func (r *ApplicationReconciler) governance(ctx context.Context, app *v1alpha1.Application, root string, rendered *render.Result) (*governed, *stepError) {
	var list v1alpha1.ModelPolicyList
	if err := r.client.List(ctx, &list, client.InNamespace(r.Options.ControllerNamespace)); err != nil && !meta.IsNoMatchError(err) {
		return nil, failTransient(v1alpha1.ConditionComparisonError, "list ModelPolicies: %s", err)
	}
	reader := checkoutReader(root)
	m, err := modelpolicy.ForApp(reader, app, list.Items)
	switch {
	case errors.Is(err, modelpolicy.ErrNotAnEnvironment):
		return nil, failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
	case err != nil:
		return nil, failPermanent(v1alpha1.ConditionComparisonError, "%s", err)
	case m == nil:
		return nil, nil
	}
	// A model belongs to the projects an admin maps it to: a tenant's
	// mlcd.yaml naming another team's model moves nothing of it.
	var projects v1alpha1.AppProjectList
	if err := r.client.List(ctx, &projects, client.InNamespace(r.Options.ControllerNamespace)); err != nil {
		return nil, failTransient(v1alpha1.ConditionComparisonError, "list AppProjects: %s", err)
	}
	if err := modelpolicy.MayGovern(cmp.Or(app.Spec.Project, v1alpha1.DefaultProject), m.Policy.Spec.RegisteredModel, projects.Items, list.Items); err != nil {
		return nil, failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
	}
	version, err := modelpolicy.Version(reader, m, app, rendered.Values)
	if err != nil {
		return nil, failPermanent(v1alpha1.ConditionComparisonError, "%s", err)
	}
	return &governed{policy: m.Policy, env: m.Env, version: version}, nil
}

// checkoutReader reads files of a checkout, confined to it.
type checkoutReader string

func (root checkoutReader) Read(p string) ([]byte, error) {
	full, err := gitsource.Join(string(root), p)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(full)
}

// resolve finds the registry version (cached once found).
func (r *ApplicationReconciler) resolve(ctx context.Context, g *governed) error {
	key := g.policy.Spec.RegisteredModel + "\x00" + g.version
	r.models.mu.Lock()
	v, ok := r.models.resolved[key]
	r.models.mu.Unlock()
	if ok {
		g.reg = v
		return nil
	}
	if r.Options.Registry == nil {
		return errNoRegistry
	}
	v, err := registry.Resolve(ctx, r.Options.Registry, g.policy.Spec.RegisteredModel, g.version)
	if err != nil {
		return err
	}
	if v.Status == registry.StatusReady {
		r.models.mu.Lock()
		r.models.resolved[key] = v
		r.models.mu.Unlock()
	}
	g.reg = v
	return nil
}

var errNoRegistry = errors.New("no model registry configured (--registry or MLFLOW_TRACKING_URI)")

// gateCheck runs the full gate unless the live workloads already run this
// version: a model change must pass it, self-healing what runs need not.
func (r *ApplicationReconciler) gateCheck(ctx context.Context, app *v1alpha1.Application, g *governed, objs []*unstructured.Unstructured, live liveSet) *stepError {
	running := false
	for _, o := range objs {
		if !isWorkload(o) {
			continue
		}
		l := live.of(o)
		if l == nil || l.GetAnnotations()[v1alpha1.AnnotationModelVersion] != g.version {
			running = false
			break
		}
		running = true
	}
	if running {
		return nil
	}
	if r.Options.Registry == nil {
		return refuseTransient(v1alpha1.ConditionModelGate, "model %s %s: %s; nothing applied", g.policy.Spec.RegisteredModel, g.version, errNoRegistry)
	}
	healthy, err := r.healthyRecord(ctx, app)
	if err != nil {
		return refuseTransient(v1alpha1.ConditionModelGate, "model %s %s: read %s: %s", g.policy.Spec.RegisteredModel, g.version, v1alpha1.HealthyVersionsConfigMap, err)
	}
	res, err := gate.Evaluate(ctx, r.Options.Registry, g.policy, g.env.Name, g.version, func(model, env, version string) bool {
		return model == g.policy.Spec.RegisteredModel && env == g.env.Name && slices.Contains(healthy, version)
	})
	if err != nil {
		return refuseTransient(v1alpha1.ConditionModelGate, "model %s %s: %s; nothing applied, the running version is kept", g.policy.Spec.RegisteredModel, g.version, err)
	}
	if gr, ok := r.Options.Recorder.(GateRecorder); ok {
		checks := map[string]bool{}
		for _, c := range res.Checks {
			checks[c.Name] = c.OK
		}
		gr.GateChecked(g.policy.Spec.RegisteredModel, g.env.Name, checks)
	}
	if !res.OK() {
		return refuseTransient(v1alpha1.ConditionModelGate, "%s; nothing applied, the running version is kept", res.Summary())
	}
	return nil
}

func isWorkload(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	switch gvk.Group + "/" + gvk.Kind {
	case "apps/Deployment", "apps/StatefulSet", "apps/DaemonSet", "serving.kserve.io/InferenceService", "mlops.seldon.io/Model":
		return true
	}
	return false
}

// stampLineage annotates workloads with model, version and registry run:
// values that change only when the model's version does. No per-commit
// value is stamped (as Argo CD's tracking annotation carries no revision):
// a commit that does not change an app's render writes none of its objects.
// Which commit deployed the version is the app's history (lineage).
func stampLineage(objs []*unstructured.Unstructured, g *governed) {
	for _, o := range objs {
		if !isWorkload(o) {
			continue
		}
		ann := o.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[v1alpha1.AnnotationModel] = g.policy.Spec.RegisteredModel
		ann[v1alpha1.AnnotationModelVersion] = g.version
		if g.reg != nil && g.reg.RunID != "" {
			ann[v1alpha1.AnnotationRunID] = g.reg.RunID
		}
		o.SetAnnotations(ann)
	}
}

// writeBack moves the environment's registry alias to the version once the
// app is Synced and Healthy at it, and tags the version with the commit.
func (r *ApplicationReconciler) writeBack(ctx context.Context, app *v1alpha1.Application, g *governed, sha string) {
	if r.Options.Registry == nil || g.reg == nil {
		return
	}
	appKey := app.Namespace + "/" + app.Name
	mark := g.reg.Version + "@" + sha
	r.models.mu.Lock()
	done := r.models.writtenBack[appKey] == mark
	r.models.mu.Unlock()
	// The record on the app is kept whatever the registry's cache says: a
	// status write that lost a conflict must not lose it.
	if err := r.recordHealthy(ctx, app, g.version); err != nil {
		log.FromContext(ctx).Error(err, "healthy version not recorded", "app", appKey, "version", g.version)
	}
	if done {
		return
	}
	model := g.policy.Spec.RegisteredModel
	err := errors.Join(
		r.Options.Registry.SetAlias(ctx, model, g.env.Name, g.reg.Version),
		r.Options.Registry.SetModelVersionTag(ctx, model, g.reg.Version, "mlcd.git_sha", sha),
		r.Options.Registry.SetModelVersionTag(ctx, model, g.reg.Version, "mlcd.deployed_at", time.Now().UTC().Format(time.RFC3339)),
		r.Options.Registry.SetModelVersionTag(ctx, model, g.reg.Version, "mlcd.app", appKey),
		r.Options.Registry.SetModelVersionTag(ctx, model, g.reg.Version, gate.DeployedTagPrefix+g.env.Name, time.Now().UTC().Format(time.RFC3339)),
	)
	if err != nil {
		log.FromContext(ctx).Error(err, "registry write-back failed", "app", appKey, "model", model, "version", g.reg.Version)
		return
	}
	r.models.mu.Lock()
	r.models.writtenBack[appKey] = mark
	r.models.mu.Unlock()
}

// runningVersion is the model version the live workloads carry ("" when
// none or they disagree).
func runningVersion(objs []*unstructured.Unstructured, live liveSet) string {
	v := ""
	for _, o := range objs {
		if !isWorkload(o) {
			continue
		}
		l := live.of(o)
		if l == nil {
			return ""
		}
		lv := l.GetAnnotations()[v1alpha1.AnnotationModelVersion]
		if v != "" && lv != v {
			return ""
		}
		v = lv
	}
	return v
}
