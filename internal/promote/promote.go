package promote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/mlcd-dev/mlcd/internal/modelpolicy"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"sigs.k8s.io/kustomize/kyaml/kio"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/mlcd-dev/mlcd/internal/render"
)

// Options describe a promotion.
type Options struct {
	Push
	// Model is the registered model name; Version as written in Git.
	Model, Version, Env string
	// Branch names the new branch (default promote/<model>-<version>-<env>).
	Branch string
	// Direct commits on the current branch instead (the target
	// environment needs no approval).
	Direct bool
	// Message, when set, is added to the commit message.
	Message string
}

// Push says which work tree a workflow commits in and where the commit
// goes; every workflow (promote, approve, rollback) takes it.
type Push struct {
	// Dir is the work tree (a Git checkout of the deployment repo).
	Dir string
	// NoPush leaves the commit local and returns the push command.
	NoPush bool
	// Remote to push to. Default origin.
	Remote string
	// Signer, when set, signs the commit the workflow makes (mlcd's own
	// key, so a project's signatureKeys can require it).
	Signer git.Signer
}

// push pushes branch from the work tree at root unless NoPush; it returns
// the push command (for the user to run when not pushed) and whether it
// pushed. what names the commit in the error.
func (p Push) push(ctx context.Context, root, branch, what string) (string, bool, error) {
	remote := p.Remote
	if remote == "" {
		remote = "origin"
	}
	cmd := fmt.Sprintf("git push %s %s", remote, branch)
	if p.NoPush {
		return cmd, false, nil
	}
	if err := gitCmd(ctx, root, "push", remote, branch); err != nil {
		return cmd, false, fmt.Errorf("push %s: %w (%s is committed locally; push it with: %s)", branch, err, what, cmd)
	}
	return cmd, true, nil
}

// ErrAlreadyAtVersion: the environment already names the version (nothing
// to promote).
var ErrAlreadyAtVersion = errors.New("nothing to promote")

// Result says what Promote did.
type Result struct {
	Branch, Commit, File, From, PushCommand string
	Pushed                                  bool
}

// Promote bumps the model's version for env on a new branch
// promote/<model>-<version>-<env> and commits. Where an Application's Helm
// parameter overrides the version, that parameter is edited (a values-file
// bump would do nothing).
func Promote(ctx context.Context, o Options) (*Result, error) {
	repo, wt, err := openClean(o.Dir)
	if err != nil {
		return nil, err
	}
	branch := o.Branch
	if branch == "" {
		branch = fmt.Sprintf("promote/%s-%s-%s", o.Model, o.Version, o.Env)
	}
	if o.Direct {
		ref, err := repo.Head()
		if err != nil {
			return nil, err
		}
		branch = ref.Name().Short()
	} else if _, err := repo.Reference(plumbing.NewBranchReferenceName(branch), false); err == nil {
		return nil, fmt.Errorf("branch %s already exists", branch)
	}
	tree, head, err := TreeAt(repo, "HEAD")
	if err != nil {
		return nil, err
	}
	deps, err := tree.Deployments()
	if err != nil {
		return nil, err
	}
	var dep *Deployment
	for i := range deps {
		if deps[i].Policy.Spec.RegisteredModel == o.Model && deps[i].Env.Name == o.Env {
			dep = &deps[i]
		}
	}
	if dep == nil {
		return nil, fmt.Errorf("no ModelPolicy (mlcd.yaml) for model %s has an environment %s", o.Model, o.Env)
	}
	if dep.Version == o.Version {
		return nil, fmt.Errorf("%w: %s in %s is already %s", ErrAlreadyAtVersion, o.Model, o.Env, o.Version)
	}
	key := dep.Policy.Spec.VersionKey
	root := wt.Filesystem.Root()
	file := filepath.Join(root, dep.File)
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var edited []byte
	switch {
	case dep.Param && render.IsKustomization(dep.Env.ValuesFile):
		key = "kustomize.images[" + dep.Policy.Spec.Image + "]"
		edited, err = setAppImage(data, dep, o.Version)
	case dep.Param:
		edited, err = setAppParameter(data, dep, key, o.Version)
	case render.IsKustomization(dep.File):
		key = "images[" + dep.Policy.Spec.Image + "].newTag"
		edited, err = setImageTag(data, dep.Policy.Spec.Image, o.Version)
	default:
		edited, err = setValue(data, key, o.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("edit %s: %w", dep.File, err)
	}

	if !o.Direct {
		if err := wt.Checkout(&git.CheckoutOptions{Hash: head.Hash, Branch: plumbing.NewBranchReferenceName(branch), Create: true}); err != nil {
			return nil, fmt.Errorf("create branch %s: %w", branch, err)
		}
	}
	if err := os.WriteFile(file, edited, 0o644); err != nil {
		return nil, err
	}
	if _, err := wt.Add(dep.File); err != nil {
		return nil, err
	}
	who := author(repo)
	where := dep.File
	switch {
	case dep.Param && render.IsKustomization(dep.Env.ValuesFile):
		where += " (kustomize image of the Application)"
	case dep.Param:
		where += " (helm parameter of the Application)"
	}
	msg := fmt.Sprintf("Promote %s %s to %s\n\n%s: %s -> %s in %s\n\nModel: %s\nVersion: %s\nEnvironment: %s\nPromoted-by: %s <%s>\n",
		o.Model, o.Version, o.Env, key, dep.Version, o.Version, where, o.Model, o.Version, o.Env, who.Name, who.Email)
	if o.Message != "" {
		msg = strings.Replace(msg, "\n\nModel: ", "\n\n"+o.Message+"\n\nModel: ", 1)
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: who, Committer: who, Signer: o.Signer})
	if err != nil {
		return nil, err
	}
	res := &Result{Branch: branch, Commit: h.String(), File: dep.File, From: dep.Version}
	res.PushCommand, res.Pushed, err = o.push(ctx, root, branch, "the branch")
	return res, err
}

// setValue sets a dotted key in a values file, keeping comments.
func setValue(data []byte, key, value string) ([]byte, error) {
	node, err := kyaml.Parse(string(data))
	if err != nil {
		return nil, err
	}
	parts := strings.Split(key, ".")
	parent, err := node.Pipe(kyaml.LookupCreate(kyaml.MappingNode, parts[:len(parts)-1]...))
	if err != nil {
		return nil, err
	}
	if err := setScalar(parent, parts[len(parts)-1], value); err != nil {
		return nil, err
	}
	return []byte(node.MustString()), nil
}

// setScalar sets field of a mapping to a string, editing an existing
// scalar in place so its comments and quoting style stay.
func setScalar(m *kyaml.RNode, field, value string) error {
	if f := m.Field(field); f != nil && f.Value.YNode().Kind == kyaml.ScalarNode {
		y := f.Value.YNode()
		y.Value, y.Tag = value, kyaml.NodeTagString
		if y.Style == 0 && needsQuotes(value) {
			y.Style = kyaml.DoubleQuotedStyle
		}
		return nil
	}
	_, err := m.Pipe(kyaml.SetField(field, kyaml.NewStringRNode(value)))
	return err
}

// needsQuotes reports whether a plain scalar would not read back as this
// string (a number, bool or null).
func needsQuotes(v string) bool {
	var out any
	if err := kyaml.Unmarshal([]byte(v), &out); err != nil {
		return true
	}
	_, isString := out.(string)
	return !isString
}

// setImageTag sets images[name].newTag (the first image when name is "")
// of a kustomization, keeping comments.
func setImageTag(data []byte, name, tag string) ([]byte, error) {
	node, err := kyaml.Parse(string(data))
	if err != nil {
		return nil, err
	}
	images, err := node.Pipe(kyaml.Lookup("images"))
	if err != nil || images == nil {
		return nil, errors.New("the kustomization has no images to retag")
	}
	elems, err := images.Elements()
	if err != nil {
		return nil, err
	}
	for _, e := range elems {
		if name != "" {
			if f := e.Field("name"); f == nil || kyaml.GetValue(f.Value) != name {
				continue
			}
		}
		if err := setScalar(e, "newTag", tag); err != nil {
			return nil, err
		}
		return []byte(node.MustString()), nil
	}
	return nil, fmt.Errorf("no image %q in the kustomization", name)
}

// setAppParameter edits helm.parameters[name=key] of the Application that
// deploys dep, in a file that may hold several documents.
func setAppParameter(data []byte, dep *Deployment, key, value string) ([]byte, error) {
	return editApp(data, dep, "parameter "+key, func(n *kyaml.RNode) (bool, error) {
		param, err := n.Pipe(kyaml.Lookup("spec", "source", "helm", "parameters", "[name="+key+"]"))
		if err != nil || param == nil {
			return false, nil
		}
		return true, setScalar(param, "value", value)
	})
}

// setAppImage rewrites the tag of the policy's image in the kustomize.images
// of the Application that deploys dep (name:tag and name=newName:tag forms;
// a digest is replaced by the tag).
func setAppImage(data []byte, dep *Deployment, tag string) ([]byte, error) {
	image := dep.Policy.Spec.Image
	return editApp(data, dep, "kustomize image "+image, func(n *kyaml.RNode) (bool, error) {
		images, err := n.Pipe(kyaml.Lookup("spec", "source", "kustomize", "images"))
		if err != nil || images == nil {
			return false, nil
		}
		elems, err := images.Elements()
		if err != nil {
			return false, err
		}
		values := make([]string, len(elems))
		for i, e := range elems {
			values[i] = kyaml.GetValue(e)
		}
		i := render.OverrideFor(values, image)
		if i < 0 {
			return false, nil
		}
		elems[i].YNode().Value = withTag(values[i], tag)
		return true, nil
	})
}

// withTag replaces the tag or digest of an Argo CD image override, keeping
// its form.
func withTag(override, tag string) string {
	img := render.ParseImage(override)
	name, _ := img["name"].(string)
	if newName, ok := img["newName"].(string); ok {
		return name + "=" + newName + ":" + tag
	}
	if strings.Contains(override, "=") {
		return name + "=" + name + ":" + tag
	}
	return name + ":" + tag
}

// editApp applies edit to the Application documents that deploy dep and
// reports an error naming what when none had it.
func editApp(data []byte, dep *Deployment, what string, edit func(*kyaml.RNode) (bool, error)) ([]byte, error) {
	nodes, err := kio.FromBytes(data)
	if err != nil {
		return nil, err
	}
	done := false
	for _, n := range nodes {
		if n.GetKind() != "Application" {
			continue
		}
		p, err := n.Pipe(kyaml.Lookup("spec", "source", "path"))
		if err != nil || p == nil || path.Clean(kyaml.GetValue(p)) != modelpolicy.AppPath(dep.Dir, dep.Env) {
			continue
		}
		if dep.Env.Application != "" && n.GetName() != dep.Env.Application {
			continue
		}
		ok, err := edit(n)
		if err != nil {
			return nil, err
		}
		done = done || ok
	}
	if !done {
		return nil, errors.New("no Application " + what + " found")
	}
	var buf bytes.Buffer
	if err := (kio.ByteWriter{Writer: &buf}).Write(nodes); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// author is the committer from git config, else $USER.
func author(repo *git.Repository) *object.Signature {
	sig := &object.Signature{When: time.Now()}
	if cfg, err := repo.ConfigScoped(0); err == nil {
		sig.Name, sig.Email = cfg.User.Name, cfg.User.Email
	}
	if sig.Name == "" {
		sig.Name = os.Getenv("USER")
		if sig.Name == "" {
			sig.Name = "mlcd"
		}
	}
	if sig.Email == "" {
		sig.Email = sig.Name + "@localhost"
	}
	return sig
}

// gitCmd runs the git binary for what go-git lacks (revert) or does
// differently from the user's setup (push with their credential helpers).
func gitCmd(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("git %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
	return nil
}

// openClean opens the repository around dir and refuses a work tree with
// uncommitted changes: a workflow commit must hold only its own edit.
func openClean(dir string) (*git.Repository, *git.Worktree, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, nil, err
	}
	status, err := wt.Status()
	if err != nil {
		return nil, nil, err
	}
	if !status.IsClean() {
		return nil, nil, fmt.Errorf("the work tree %s has uncommitted changes; commit or stash them first", wt.Filesystem.Root())
	}
	return repo, wt, nil
}
