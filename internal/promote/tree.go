package promote

import (
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/render"
)

// Deployment is where one environment of one model gets its version.
type Deployment struct {
	Policy *v1alpha1.ModelPolicy
	// Dir is the model's directory (where mlcd.yaml is).
	Dir string
	Env v1alpha1.ModelEnvironment
	// Version is the effective version: an Application's Helm parameter
	// overrides the values file, as it does at render time.
	Version string
	// File is where Version is written; Param is set when it is an
	// Application's helm.parameters entry or, for a kustomization, an
	// entry of its kustomize.images.
	File  string
	Param bool
	// App is the Application manifest that deploys this environment, if
	// found in the repository.
	App string
	// ValuesVersion is the values file's version when a parameter
	// overrides it.
	ValuesVersion string
}

// Key names the deployment: model/env.
func (d Deployment) Key() string { return d.Policy.Spec.RegisteredModel + "/" + d.Env.Name }

// Tree reads files of one commit.
type Tree struct {
	tree *object.Tree
}

// TreeAt resolves rev (branch, remote branch, tag, SHA, HEAD) in repo.
func TreeAt(repo *git.Repository, rev string) (*Tree, *object.Commit, error) {
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, nil, fmt.Errorf("revision %s: %w", rev, err)
	}
	c, err := repo.CommitObject(*h)
	if err != nil {
		return nil, nil, err
	}
	t, err := c.Tree()
	if err != nil {
		return nil, nil, err
	}
	return &Tree{tree: t}, c, nil
}

// Read returns a file's content; os-style not-exist as ErrNotExist.
func (t *Tree) Read(p string) ([]byte, error) {
	f, err := t.tree.File(p)
	if err != nil {
		if errors.Is(err, object.ErrFileNotFound) {
			return nil, fmt.Errorf("%s: %w", p, errNotExist)
		}
		return nil, err
	}
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

var errNotExist = errors.New("file does not exist")

// Deployments finds every ModelPolicy in the tree and the effective
// version of each of its environments.
func (t *Tree) Deployments() ([]Deployment, error) { return t.DeploymentsUnder(t) }

// DeploymentsUnder is Deployments with the ModelPolicies read from
// policies (the base of a change: a change cannot weaken the policy that
// gates it) and the versions from t.
func (t *Tree) DeploymentsUnder(policies *Tree) ([]Deployment, error) {
	var yamls []string
	err := t.tree.Files().ForEach(func(f *object.File) error {
		if path.Base(f.Name) != v1alpha1.ModelPolicyFile && (strings.HasSuffix(f.Name, ".yaml") || strings.HasSuffix(f.Name, ".yml")) {
			yamls = append(yamls, f.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	policyFiles, err := policies.policyFiles()
	if err != nil {
		return nil, err
	}
	apps, err := t.applications(yamls)
	if err != nil {
		return nil, err
	}
	var out []Deployment
	for _, p := range policyFiles {
		data, err := policies.Read(p)
		if err != nil {
			return nil, err
		}
		pol, err := v1alpha1.ParseModelPolicy(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		dir := path.Dir(p)
		for _, env := range pol.Spec.Environments {
			d := Deployment{Policy: pol, Dir: dir, Env: env, File: path.Join(dir, env.ValuesFile)}
			if data, err := t.Read(d.File); err == nil {
				var vals map[string]any
				if err := yaml.Unmarshal(data, &vals); err != nil {
					return nil, fmt.Errorf("%s: invalid YAML: %w", d.File, err)
				}
				if render.IsKustomization(d.File) {
					d.Version, _ = render.KustomizationTag(vals, pol.Spec.Image)
				} else {
					d.Version, _ = render.ValueAt(vals, pol.Spec.VersionKey)
				}
			}
			for _, a := range apps {
				if !a.deploys(dir, env) {
					continue
				}
				d.App = a.file
				v, ok := a.param(pol.Spec.VersionKey)
				if render.IsKustomization(d.File) {
					v, ok = a.imageTag(pol.Spec.Image)
				}
				if ok {
					d.ValuesVersion = d.Version
					d.Version, d.File, d.Param = v, a.file, true
				}
			}
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, nil
}

type appManifest struct {
	file string
	app  v1alpha1.Application
}

func (a appManifest) deploys(dir string, env v1alpha1.ModelEnvironment) bool {
	src := a.app.SourceOf()
	if src == nil || path.Clean(src.Path) != appPath(dir, env) {
		return false
	}
	if env.Application != "" {
		return a.app.Name == env.Application
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

// appPath is the source path of an environment's Application: the model
// directory for Helm, the kustomization's directory for Kustomize.
func appPath(dir string, env v1alpha1.ModelEnvironment) string {
	if render.IsKustomization(env.ValuesFile) {
		return path.Dir(path.Join(dir, env.ValuesFile))
	}
	return path.Clean(dir)
}

// imageTag is the tag the Application's kustomize.images override sets for
// image (any image when image is ""); the last entry wins, as at render
// time.
func (a appManifest) imageTag(image string) (string, bool) {
	src := a.app.SourceOf()
	if src == nil || src.Kustomize == nil {
		return "", false
	}
	return render.OverrideTag(src.Kustomize.Images, image)
}

func (a appManifest) param(key string) (string, bool) {
	src := a.app.SourceOf()
	if src == nil || src.Helm == nil {
		return "", false
	}
	for _, p := range src.Helm.Parameters {
		if p.Name == key {
			return p.Value, true
		}
	}
	return "", false
}

func (t *Tree) applications(files []string) ([]appManifest, error) {
	var out []appManifest
	for _, f := range files {
		data, err := t.Read(f)
		if err != nil {
			return nil, err
		}
		apps, _ := t.applicationsIn(f, data)
		out = append(out, apps...)
	}
	return out, nil
}

// applicationsIn parses the Applications of one file; a file that does not
// parse holds none here (the controller reports it).
func (t *Tree) applicationsIn(f string, data []byte) ([]appManifest, error) {
	if !strings.Contains(string(data), "kind: Application") {
		return nil, nil
	}
	objs, err := manifest.Parse(f, data)
	if err != nil {
		return nil, err
	}
	var out []appManifest
	for _, o := range objs {
		if o.GetKind() != "Application" || o.GroupVersionKind().Group != v1alpha1.GroupVersion.Group {
			continue
		}
		raw, _ := o.MarshalJSON()
		var a v1alpha1.Application
		if err := yaml.Unmarshal(raw, &a); err != nil {
			continue
		}
		out = append(out, appManifest{file: f, app: a})
	}
	return out, nil
}

// policyFiles lists the tree's mlcd.yaml files.
func (t *Tree) policyFiles() ([]string, error) {
	var out []string
	err := t.tree.Files().ForEach(func(f *object.File) error {
		if path.Base(f.Name) == v1alpha1.ModelPolicyFile {
			out = append(out, f.Name)
		}
		return nil
	})
	return out, err
}

// PolicyChanges lists the ModelPolicy files (mlcd.yaml) and AppProject
// manifests that differ between base and head: "<file>: added", "…:
// deleted" or "…: modified". Such a change needs its own review.
func PolicyChanges(repo *git.Repository, base, head string) ([]string, error) {
	bt, _, err := TreeAt(repo, base)
	if err != nil {
		return nil, err
	}
	ht, _, err := TreeAt(repo, head)
	if err != nil {
		return nil, err
	}
	b, err := bt.policyHashes()
	if err != nil {
		return nil, err
	}
	h, err := ht.policyHashes()
	if err != nil {
		return nil, err
	}
	var out []string
	for f, hash := range b {
		switch hh, ok := h[f]; {
		case !ok:
			out = append(out, f+": deleted")
		case hh != hash:
			out = append(out, f+": modified")
		}
	}
	for f := range h {
		if _, ok := b[f]; !ok {
			out = append(out, f+": added")
		}
	}
	sort.Strings(out)
	return out, nil
}

// policyHashes maps each mlcd.yaml and each file holding an AppProject to
// its blob hash.
func (t *Tree) policyHashes() (map[string]string, error) {
	out := map[string]string{}
	err := t.tree.Files().ForEach(func(f *object.File) error {
		if path.Base(f.Name) == v1alpha1.ModelPolicyFile {
			out[f.Name] = f.Hash.String()
			return nil
		}
		if !strings.HasSuffix(f.Name, ".yaml") && !strings.HasSuffix(f.Name, ".yml") {
			return nil
		}
		content, err := f.Contents()
		if err != nil {
			return err
		}
		if strings.Contains(content, "kind: AppProject") {
			out[f.Name] = f.Hash.String()
		}
		return nil
	})
	return out, err
}
