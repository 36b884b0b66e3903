package promote

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mlcd-dev/mlcd/internal/modelpolicy"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/manifest"
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
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
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

// Deployments finds every ModelPolicy in the tree and the effective
// version of each of its environments.
func (t *Tree) Deployments() ([]Deployment, error) { return t.DeploymentsUnder(t, nil) }

// DeploymentsUnder is Deployments with the ModelPolicies read from
// policies (the base of a change: a change cannot weaken the policy that
// gates it) and the versions from t; cluster adds the cluster's ModelPolicy
// objects, which govern the Applications they name where no mlcd.yaml does
// (as in the controller).
func (t *Tree) DeploymentsUnder(policies *Tree, cluster []v1alpha1.ModelPolicy) ([]Deployment, error) {
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
	type governing struct {
		pol *v1alpha1.ModelPolicy
		dir string
	}
	var govs []governing
	inGit := map[string]bool{}
	for _, p := range policyFiles {
		dir := path.Dir(p)
		pol, err := modelpolicy.Read(policies, dir)
		if err != nil {
			return nil, err
		}
		govs = append(govs, governing{pol, dir})
		inGit[dir] = true
	}
	for i := range cluster {
		mp := &cluster[i]
		if err := mp.Validate(); err != nil {
			return nil, fmt.Errorf("ModelPolicy %s/%s: %w", mp.Namespace, mp.Name, err)
		}
		// Its directory is that of the Applications it names.
		for _, a := range apps {
			src := a.app.SourceOf()
			if _, named := mp.EnvironmentForApp(a.app.Name); !named || src == nil || inGit[path.Clean(src.Path)] {
				continue
			}
			govs = append(govs, governing{mp, path.Clean(src.Path)})
			inGit[path.Clean(src.Path)] = true
		}
	}
	var out []Deployment
	for _, g := range govs {
		pol, dir := g.pol, g.dir
		for _, env := range pol.Spec.Environments {
			d := Deployment{Policy: pol, Dir: dir, Env: env, File: path.Join(dir, env.ValuesFile)}
			if data, err := t.Read(d.File); err == nil {
				if d.Version, err = modelpolicy.FileTag(pol, d.File, data); err != nil {
					return nil, err
				}
			}
			for _, a := range apps {
				if !modelpolicy.Deploys(&a.app, dir, env) {
					continue
				}
				d.App = a.file
				if v, ok := modelpolicy.Override(&a.app, pol, env); ok {
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
	bt, ht, err := treesAt(repo, base, head)
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

// treesAt resolves the two sides of a change.
func treesAt(repo *git.Repository, base, head string) (*Tree, *Tree, error) {
	bt, _, err := TreeAt(repo, base)
	if err != nil {
		return nil, nil, err
	}
	ht, _, err := TreeAt(repo, head)
	if err != nil {
		return nil, nil, err
	}
	return bt, ht, nil
}

// Extract writes the files under prefix (a directory of the tree, "" for
// all) into dest, keeping their paths: a checkout of part of one commit
// for tools that read a directory.
func (t *Tree) Extract(prefix, dest string) error {
	return t.tree.Files().ForEach(func(f *object.File) error {
		if prefix != "" && f.Name != prefix && !strings.HasPrefix(f.Name, strings.TrimSuffix(prefix, "/")+"/") {
			return nil
		}
		if !f.Mode.IsFile() {
			return nil // symlinks and submodules stay out
		}
		data, err := f.Contents()
		if err != nil {
			return err
		}
		p := filepath.Join(dest, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(data), 0o644)
	})
}

// Touches reports whether the directory dir differs between base and head
// (added, removed or any file changed below it).
func Touches(repo *git.Repository, base, head, dir string) (bool, error) {
	bt, ht, err := treesAt(repo, base, head)
	if err != nil {
		return false, err
	}
	hashOf := func(t *Tree) plumbing.Hash {
		sub, err := t.tree.Tree(dir)
		if err != nil {
			return plumbing.ZeroHash
		}
		return sub.Hash
	}
	return hashOf(bt) != hashOf(ht), nil
}
