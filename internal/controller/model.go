package controller

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/gate"
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

// governance finds the app's ModelPolicy (mlcd.yaml in the app path, or
// for a kustomize overlay in a parent directory) and the version the app
// deploys. nil means the app is not governed.
func (r *ApplicationReconciler) governance(ctx context.Context, app *v1alpha1.Application, root string, src *v1alpha1.ApplicationSource, rendered *render.Result) (*governed, *stepError) {
	policy, dir, serr := r.policyFor(ctx, app, root, src)
	if serr != nil || policy == nil {
		return nil, serr
	}
	env, ok := policy.EnvironmentForApp(app.Name)
	if !ok && src.Helm != nil {
		for _, e := range policy.Spec.Environments {
			for _, vf := range src.Helm.ValueFiles {
				if filepath.Base(vf) == e.ValuesFile {
					env, ok = e, true
				}
			}
		}
	}
	if !ok {
		env, ok = overlayEnvironment(policy, dir, src.Path)
	}
	if !ok {
		return nil, fail(v1alpha1.ConditionInvalidSpecError, false, "application %s is not an environment of ModelPolicy %s (set spec.environments[].application)", app.Name, policy.Name)
	}
	if render.IsKustomization(env.ValuesFile) {
		version, ok := r.kustomizeVersion(root, src, policy.Spec.Image)
		if !ok || version == "" {
			return nil, fail(v1alpha1.ConditionComparisonError, false, "image %s has no tag in %s/kustomization.yaml or the Application's kustomize.images (ModelPolicy %s)", policy.Spec.Image, src.Path, policy.Name)
		}
		return &governed{policy: policy, env: env, version: version}, nil
	}
	version, ok := render.ValueAt(rendered.Values, policy.Spec.VersionKey)
	if !ok || version == "" {
		return nil, fail(v1alpha1.ConditionComparisonError, false, "values key %s is not set for %s (ModelPolicy %s)", policy.Spec.VersionKey, app.Name, policy.Name)
	}
	return &governed{policy: policy, env: env, version: version}, nil
}

// kustomizeVersion is the model image's tag as the render sets it: the
// Application's kustomize.images override, else the kustomization's
// images entry. (mlcd model check reads the same two places.)
func (r *ApplicationReconciler) kustomizeVersion(root string, src *v1alpha1.ApplicationSource, image string) (string, bool) {
	if src.Kustomize != nil {
		if tag, ok := render.OverrideTag(src.Kustomize.Images, image); ok {
			return tag, true
		}
	}
	for _, name := range render.KustomizationFiles {
		p, err := gitsource.Join(root, path.Join(src.Path, name))
		if err != nil {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var k map[string]any
		if err := yaml.Unmarshal(data, &k); err != nil {
			return "", false
		}
		return render.KustomizationTag(k, image)
	}
	return "", false
}

// overlayEnvironment is the environment whose kustomization is the app's
// source path; dir is the policy's directory.
func overlayEnvironment(p *v1alpha1.ModelPolicy, dir, srcPath string) (v1alpha1.ModelEnvironment, bool) {
	for _, e := range p.Spec.Environments {
		if render.IsKustomization(e.ValuesFile) && path.Dir(path.Join(dir, e.ValuesFile)) == path.Clean(srcPath) {
			return e, true
		}
	}
	return v1alpha1.ModelEnvironment{}, false
}

// policyFor reads the app's ModelPolicy and the directory its environment
// files are relative to: mlcd.yaml in the app path wins; then, for a
// kustomize overlay, mlcd.yaml in a parent directory that names the
// overlay's kustomization as an environment; else a ModelPolicy object in
// the app's (or the controller's) namespace that names the app in an
// environment. nil means the app is ungoverned.
func (r *ApplicationReconciler) policyFor(ctx context.Context, app *v1alpha1.Application, root string, src *v1alpha1.ApplicationSource) (*v1alpha1.ModelPolicy, string, *stepError) {
	policy, serr := readPolicy(root, src.Path)
	if policy != nil || serr != nil {
		return policy, path.Clean(src.Path), serr
	}
	for dir := path.Clean(src.Path); dir != "." && dir != "/"; {
		dir = path.Dir(dir)
		policy, serr := readPolicy(root, dir)
		if serr != nil {
			return nil, "", serr
		}
		if policy != nil {
			if _, ok := overlayEnvironment(policy, dir, src.Path); ok {
				return policy, dir, nil
			}
		}
	}
	for _, ns := range []string{r.Options.ControllerNamespace} {
		var list v1alpha1.ModelPolicyList
		if err := r.client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			if meta.IsNoMatchError(err) {
				return nil, "", nil
			}
			return nil, "", fail(v1alpha1.ConditionComparisonError, true, "list ModelPolicies: %s", err)
		}
		for i := range list.Items {
			mp := &list.Items[i]
			if _, ok := mp.EnvironmentForApp(app.Name); !ok {
				continue
			}
			if err := mp.Validate(); err != nil {
				return nil, "", fail(v1alpha1.ConditionComparisonError, false, "ModelPolicy %s/%s: %s", mp.Namespace, mp.Name, err)
			}
			return mp, path.Clean(src.Path), nil
		}
	}
	return nil, "", nil
}

// readPolicy reads dir/mlcd.yaml in the checkout; nil when there is none.
func readPolicy(root, dir string) (*v1alpha1.ModelPolicy, *stepError) {
	p, err := gitsource.Join(root, path.Join(dir, v1alpha1.ModelPolicyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fail(v1alpha1.ConditionComparisonError, false, "%s", err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fail(v1alpha1.ConditionComparisonError, true, "read %s: %s", v1alpha1.ModelPolicyFile, err)
	}
	policy, err := v1alpha1.ParseModelPolicy(data)
	if err != nil {
		return nil, fail(v1alpha1.ConditionComparisonError, false, "%s/%s: %s", dir, v1alpha1.ModelPolicyFile, err)
	}
	return policy, nil
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
		return refuse(v1alpha1.ConditionModelGate, true, "model %s %s: %s; nothing applied", g.policy.Spec.RegisteredModel, g.version, errNoRegistry)
	}
	res, err := gate.Evaluate(ctx, r.Options.Registry, g.policy, g.env.Name, g.version, func(env, version string) bool {
		return env == g.env.Name && slices.Contains(healthyVersions(app), version)
	})
	if err != nil {
		return refuse(v1alpha1.ConditionModelGate, true, "model %s %s: %s; nothing applied, the running version is kept", g.policy.Spec.RegisteredModel, g.version, err)
	}
	if !res.OK() {
		return refuse(v1alpha1.ConditionModelGate, true, "%s; nothing applied, the running version is kept", res.Summary())
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

// stampLineage annotates workloads with model, version, run and commit.
func stampLineage(objs []*unstructured.Unstructured, g *governed, sha string) {
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
		ann[v1alpha1.AnnotationGitSHA] = sha
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
	if done {
		return
	}
	if !slices.Contains(healthyVersions(app), g.version) {
		setHealthyVersions(app, append(healthyVersions(app), g.version))
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

const maxHealthyVersions = 20

func healthyVersions(app *v1alpha1.Application) []string {
	v := app.Annotations[v1alpha1.HealthyVersionsAnnotation]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func setHealthyVersions(app *v1alpha1.Application, list []string) {
	if len(list) > maxHealthyVersions {
		list = list[len(list)-maxHealthyVersions:]
	}
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	if len(list) == 0 {
		delete(app.Annotations, v1alpha1.HealthyVersionsAnnotation)
		return
	}
	app.Annotations[v1alpha1.HealthyVersionsAnnotation] = strings.Join(list, ",")
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

// forgetReverted drops a version that a revert undid from the app's
// record of healthy versions: it is no longer exempt.
func forgetReverted(app *v1alpha1.Application, version string) {
	list := healthyVersions(app)
	if i := slices.Index(list, version); i >= 0 {
		setHealthyVersions(app, slices.Delete(list, i, i+1))
	}
}
