// Package modelpolicy is the one answer to two questions: which
// ModelPolicy, environment and effective version does an Application
// deploy, and where is a policy deployed. The controller (before a sync),
// `mlcd model check`, `promote` and `rollback` all ask it, from a tree
// they read (a checkout or a Git commit) and, for the controller, the
// cluster's ModelPolicy objects. It writes nothing.
//
// The semantics, in one place:
//   - A policy lives in mlcd.yaml in a model directory; its Helm
//     environments name a values file of that directory, its Kustomize
//     environments a kustomization (an overlay) below it.
//   - An Application deploys an environment when its source path is the
//     environment's path (the model directory for Helm, the overlay's
//     directory for Kustomize) and: the environment names it in
//     `application` (then only it), or else, for Helm, one of its
//     valueFiles is the environment's values file, or, for Kustomize, its
//     path is the overlay.
//   - The effective version is what the render uses: an Application's Helm
//     parameter over the values file; its kustomize.images override over
//     the overlay's images.
package modelpolicy

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/render"
)

// Reader reads files of one tree by slash path; a missing file is an
// error matching fs.ErrNotExist.
type Reader interface {
	Read(p string) ([]byte, error)
}

// Sentinel errors callers branch on.
var (
	// ErrNotAnEnvironment: the app renders a governed model directory but
	// no environment of the policy names it.
	ErrNotAnEnvironment = errors.New("not an environment of its model policy")
	// ErrNoVersion: the version key (or image tag) is not set.
	ErrNoVersion = errors.New("model version not set")
	// ErrInvalidPolicy: mlcd.yaml does not parse or validate.
	ErrInvalidPolicy = errors.New("invalid model policy")
)

// Read returns dir/mlcd.yaml of the tree; nil when there is none.
func Read(r Reader, dir string) (*v1alpha1.ModelPolicy, error) {
	p := path.Join(dir, v1alpha1.ModelPolicyFile)
	data, err := r.Read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	policy, err := v1alpha1.ParseModelPolicy(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", p, ErrInvalidPolicy, err)
	}
	return policy, nil
}

// AppPath is the source path of an environment's Application: the model
// directory for Helm, the kustomization's directory for Kustomize.
func AppPath(dir string, env v1alpha1.ModelEnvironment) string {
	if render.IsKustomization(env.ValuesFile) {
		return path.Dir(path.Join(dir, env.ValuesFile))
	}
	return path.Clean(dir)
}

// Deploys reports whether the Application deploys env of the policy whose
// mlcd.yaml is in dir.
func Deploys(app *v1alpha1.Application, dir string, env v1alpha1.ModelEnvironment) bool {
	src := app.SourceOf()
	if src == nil || path.Clean(src.Path) != AppPath(dir, env) {
		return false
	}
	if env.Application != "" {
		return app.Name == env.Application
	}
	if render.IsKustomization(env.ValuesFile) {
		return true // the app's path is this environment's overlay
	}
	if src.Helm != nil {
		for _, vf := range src.Helm.ValueFiles {
			if path.Base(vf) == env.ValuesFile {
				return true
			}
		}
	}
	return false
}

// Match is an app's policy and environment.
type Match struct {
	Policy *v1alpha1.ModelPolicy
	// Dir is the directory environment files are relative to.
	Dir string
	Env v1alpha1.ModelEnvironment
}

// ForApp finds the app's policy and environment: one of cluster
// (ModelPolicy objects of the control-plane namespace) that names the app
// (namespace/name) in an environment, else mlcd.yaml in the app's path,
// else (for a kustomize overlay) mlcd.yaml in a directory above it that
// has the overlay as an environment. nil, nil: the app is not governed.
func ForApp(r Reader, app *v1alpha1.Application, cluster []v1alpha1.ModelPolicy) (*Match, error) {
	src := app.SourceOf()
	if src == nil {
		return nil, nil
	}
	dir := path.Clean(src.Path)
	// An admin's ModelPolicy in the control-plane namespace wins over a
	// mlcd.yaml the repository's author wrote.
	for i := range cluster {
		mp := &cluster[i]
		if _, ok := mp.EnvironmentFor(app.Namespace, app.Name); !ok {
			continue
		}
		if err := mp.Validate(); err != nil {
			return nil, fmt.Errorf("ModelPolicy %s/%s: %w: %w", mp.Namespace, mp.Name, ErrInvalidPolicy, err)
		}
		return environment(mp, dir, app)
	}
	policy, err := Read(r, dir)
	if err != nil {
		return nil, err
	}
	if policy != nil {
		return environment(policy, dir, app)
	}
	for d := dir; d != "." && d != "/"; {
		d = path.Dir(d)
		policy, err := Read(r, d)
		if err != nil {
			return nil, err
		}
		if policy == nil {
			continue
		}
		for _, e := range policy.Spec.Environments {
			if render.IsKustomization(e.ValuesFile) && AppPath(d, e) == dir {
				return environment(policy, d, app)
			}
		}
	}
	return nil, nil
}

func environment(p *v1alpha1.ModelPolicy, dir string, app *v1alpha1.Application) (*Match, error) {
	for _, e := range p.Spec.Environments {
		if Deploys(app, dir, e) {
			return &Match{Policy: p, Dir: dir, Env: e}, nil
		}
	}
	return nil, fmt.Errorf("application %s renders %s but is not an environment of ModelPolicy %s (set spec.environments[].application, or use an environment's values file): %w", app.Name, dir, p.Name, ErrNotAnEnvironment)
}

// Version is the effective version the app deploys. values are the Helm
// values the render used (nil for Kustomize); for a kustomization it is
// the image's tag from the Application's kustomize.images override, else
// from the overlay's images.
func Version(r Reader, m *Match, app *v1alpha1.Application, values map[string]any) (string, error) {
	src := app.SourceOf()
	if render.IsKustomization(m.Env.ValuesFile) {
		if src != nil && src.Kustomize != nil {
			if tag, ok := render.OverrideTag(src.Kustomize.Images, m.Policy.Spec.Image); ok && tag != "" {
				return tag, nil
			}
		}
		if tag, ok := overlayTag(r, AppPath(m.Dir, m.Env), m.Policy.Spec.Image); ok && tag != "" {
			return tag, nil
		}
		return "", fmt.Errorf("image %s has no tag in %s/kustomization.yaml or the Application's kustomize.images (ModelPolicy %s): %w", m.Policy.Spec.Image, AppPath(m.Dir, m.Env), m.Policy.Name, ErrNoVersion)
	}
	if v, ok := render.ValueAt(values, m.Policy.Spec.VersionKey); ok && v != "" {
		return v, nil
	}
	return "", fmt.Errorf("values key %s is not set for %s (ModelPolicy %s): %w", m.Policy.Spec.VersionKey, app.Name, m.Policy.Name, ErrNoVersion)
}

// overlayTag is image's tag in the kustomization of dir.
func overlayTag(r Reader, dir, image string) (string, bool) {
	for _, name := range render.KustomizationFiles {
		data, err := r.Read(path.Join(dir, name))
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

// FileTag is the version a values file or kustomization sets: the
// policy's version key, or the image's tag for a kustomization.
func FileTag(p *v1alpha1.ModelPolicy, file string, data []byte) (string, error) {
	var vals map[string]any
	if err := yaml.Unmarshal(data, &vals); err != nil {
		return "", fmt.Errorf("%s: invalid YAML: %w", file, err)
	}
	if render.IsKustomization(file) {
		v, _ := render.KustomizationTag(vals, p.Spec.Image)
		return v, nil
	}
	v, _ := render.ValueAt(vals, p.Spec.VersionKey)
	return v, nil
}

// Override is the version an Application manifest sets for its
// environment itself: a Helm parameter of the version key, or for a
// kustomization a kustomize.images override of the image.
func Override(app *v1alpha1.Application, p *v1alpha1.ModelPolicy, env v1alpha1.ModelEnvironment) (string, bool) {
	src := app.SourceOf()
	if src == nil {
		return "", false
	}
	if render.IsKustomization(env.ValuesFile) {
		if src.Kustomize == nil {
			return "", false
		}
		return render.OverrideTag(src.Kustomize.Images, p.Spec.Image)
	}
	if src.Helm == nil {
		return "", false
	}
	for _, prm := range src.Helm.Parameters {
		if prm.Name == p.Spec.VersionKey {
			return prm.Value, true
		}
	}
	return "", false
}

// Owners are the projects an admin maps model to (AppProjects'
// mlcd.io/models, cluster ModelPolicies' mlcd.io/projects); none: unmapped.
func Owners(model string, projects []v1alpha1.AppProject, cluster []v1alpha1.ModelPolicy) []string {
	var out []string
	add := func(p string) {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, p := range projects {
		if v, ok := p.Annotations[v1alpha1.AnnotationProjectModels]; ok && v1alpha1.GlobAny(splitList(v), model) {
			add(p.Name)
		}
	}
	for _, mp := range cluster {
		if mp.Spec.RegisteredModel == model {
			for _, p := range splitList(mp.Annotations[v1alpha1.AnnotationModelProjects]) {
				add(p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ErrNotOwner is an app whose project may not govern the model it names.
var ErrNotOwner = errors.New("the model belongs to other projects")

// MayGovern says whether an app of project may govern model.
func MayGovern(project, model string, projects []v1alpha1.AppProject, cluster []v1alpha1.ModelPolicy) error {
	owners := Owners(model, projects, cluster)
	if len(owners) == 0 || slices.Contains(owners, project) {
		return nil
	}
	return fmt.Errorf("%w: registered model %s is mapped to project(s) %s, not to %s (%s on the AppProject or %s on a ModelPolicy in the control-plane namespace): not gated, written back, promoted or reverted for this app",
		ErrNotOwner, model, strings.Join(owners, ", "), project, v1alpha1.AnnotationProjectModels, v1alpha1.AnnotationModelProjects)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
