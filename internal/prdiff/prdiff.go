// Package prdiff answers what a change to a deployment repository does to
// what reaches the cluster, before it merges: it renders, offline and
// without cluster credentials, every Application the change can affect —
// those under a path, app-of-apps children and ApplicationSet-generated
// apps — at a base and a head revision, and reports per app whose rendered
// objects differ a unified diff of those objects (Secret data masked), and
// the apps added or removed. Apps whose render did not change are not
// listed.
package prdiff

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/appset"
	"github.com/mlcd-dev/mlcd/internal/diff"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/render"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// Options say what to compare.
type Options struct {
	// Repo is a local clone of the repository.
	Repo string
	// Base and Head are revisions of it (branches, tags, SHAs).
	Base, Head string
	// Path is the directory of Application and ApplicationSet manifests
	// ("" or ".": the whole tree).
	Path string
}

// Status of an app in a Result.
const (
	Changed = "changed"
	Added   = "added"
	Removed = "removed"
	Failed  = "error" // the head revision does not render
)

// AppDiff is one app whose rendered objects differ.
type AppDiff struct {
	// App is namespace/name.
	App    string `json:"app"`
	Status string `json:"status"`
	// Diff is a unified diff of the app's rendered objects, base → head.
	Diff string `json:"diff,omitempty"`
	// Error says why the head revision does not render.
	Error string `json:"error,omitempty"`
}

// Result is a comparison.
type Result struct {
	Base string    `json:"base"`
	Head string    `json:"head"`
	Apps []AppDiff `json:"apps"`
	// Skipped are apps whose sources are in another repository.
	Skipped []string `json:"skipped,omitempty"`
}

// Differs reports whether any app's render changed (or fails).
func (r *Result) Differs() bool { return len(r.Apps) > 0 }

// Failed reports whether the head revision fails to render an app.
func (r *Result) Failed() bool {
	for _, a := range r.Apps {
		if a.Status == Failed {
			return true
		}
	}
	return false
}

// Run compares o.Base with o.Head.
func Run(ctx context.Context, o Options) (*Result, error) {
	dir, err := filepath.Abs(o.Repo)
	if err != nil {
		return nil, err
	}
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", o.Repo, err)
	}
	wt, err := repo.Worktree()
	if err == nil {
		dir = wt.Filesystem.Root()
	}
	origin := ""
	if r, err := repo.Remote("origin"); err == nil && len(r.Config().URLs) > 0 {
		origin = r.Config().URLs[0]
	}
	cacheDir, err := os.MkdirTemp("", "mlcd-diff-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cacheDir)
	d := &differ{
		ctx: ctx, repo: repo, dir: cacheDir,
		mine: map[string]bool{source.RepoIdentity("file://" + dir): true, source.RepoIdentity(dir): true},
		// Random per run: a mask shows whether a value changed between the
		// two revisions, and cannot be brute-forced from a PR comment.
		masker: diff.NewMasker(),
	}
	if origin != "" {
		d.mine[source.RepoIdentity(origin)] = true
	}
	res := &Result{}
	base, err := d.side(o.Base, o.Path)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", o.Base, err)
	}
	head, err := d.side(o.Head, o.Path)
	if err != nil {
		return nil, fmt.Errorf("head %s: %w", o.Head, err)
	}
	res.Base, res.Head = base.sha, head.sha
	names := map[string]bool{}
	for n := range base.apps {
		names[n] = true
	}
	for n := range head.apps {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		b, h := base.apps[n], head.apps[n]
		switch {
		case h != nil && h.err != "":
			res.Apps = append(res.Apps, AppDiff{App: n, Status: Failed, Error: h.err})
		case b == nil:
			res.Apps = append(res.Apps, AppDiff{App: n, Status: Added, Diff: unified("", h.text, n)})
		case h == nil:
			res.Apps = append(res.Apps, AppDiff{App: n, Status: Removed, Diff: unified(b.text, "", n)})
		case b.text != h.text:
			res.Apps = append(res.Apps, AppDiff{App: n, Status: Changed, Diff: unified(b.text, h.text, n)})
		}
	}
	for n := range head.skipped {
		res.Skipped = append(res.Skipped, n)
	}
	sort.Strings(res.Skipped)
	return res, nil
}

type differ struct {
	ctx    context.Context
	repo   *git.Repository
	dir    string // where revisions are checked out
	mine   map[string]bool
	masker *diff.Masker
}

// rendered is one app at one revision: its objects as text, or why not.
type rendered struct {
	text, err string
}

type side struct {
	sha     string
	root    string
	apps    map[string]*rendered
	skipped map[string]bool
}

// maxApps bounds the apps one revision may yield (an app-of-apps loop).
const maxApps = 10000

func (d *differ) side(rev, path string) (*side, error) {
	h, err := d.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("revision %s: %w", rev, err)
	}
	sha := h.String()
	root := filepath.Join(d.dir, sha)
	if _, err := os.Stat(root); err != nil {
		if err := source.CheckoutCommit(d.ctx, d.repo, sha, root); err != nil {
			return nil, err
		}
	}
	s := &side{sha: sha, root: root, apps: map[string]*rendered{}, skipped: map[string]bool{}}
	queue, err := manifests(root, path)
	if err != nil {
		return nil, err
	}
	renderer := render.New()
	for len(queue) > 0 {
		if len(s.apps) > maxApps {
			return nil, fmt.Errorf("more than %d applications", maxApps)
		}
		app := queue[0]
		queue = queue[1:]
		name := app.Namespace + "/" + app.Name
		if _, seen := s.apps[name]; seen {
			continue
		}
		objs, skip, err := d.render(renderer, s, app)
		switch {
		case skip:
			s.skipped[name] = true
			continue
		case err != nil:
			s.apps[name] = &rendered{err: manifest.OneLine(err)}
			continue
		}
		var children []*v1alpha1.Application
		for _, o := range objs {
			if o.GetKind() == "Application" && o.GroupVersionKind().Group == "argoproj.io" {
				if a, err := toApp(o, app.Spec.Destination.Namespace); err == nil {
					children = append(children, a)
				}
			}
		}
		queue = append(queue, children...)
		s.apps[name] = &rendered{text: d.text(objs)}
	}
	return s, nil
}

// manifests are the Applications under path of root, and those the
// ApplicationSets there generate (their git generators read root).
func manifests(root, path string) ([]*v1alpha1.Application, error) {
	base, err := source.Join(root, strings.TrimPrefix(filepath.ToSlash(filepath.Clean(path)), "/"))
	if err != nil {
		return nil, fmt.Errorf("path %s: %w", path, err)
	}
	var out []*v1alpha1.Application
	err = filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		objs, err := manifest.Parse(rel, data)
		if err != nil {
			return nil // not a manifest (a values file, say)
		}
		for _, o := range objs {
			if o.GroupVersionKind().Group != "argoproj.io" {
				continue
			}
			switch o.GetKind() {
			case "Application":
				a, err := toApp(o, "")
				if err != nil {
					return fmt.Errorf("%s: %w", rel, err)
				}
				out = append(out, a)
			case "ApplicationSet":
				apps, err := generate(root, o)
				if err != nil {
					return fmt.Errorf("%s: ApplicationSet %s: %w", rel, o.GetName(), err)
				}
				out = append(out, apps...)
			}
		}
		return nil
	})
	return out, err
}

// toApp reads an Application; without a namespace it is in defaultNS (an
// app-of-apps child: its parent's destination), else the control-plane
// namespace.
func toApp(o *unstructured.Unstructured, defaultNS string) (*v1alpha1.Application, error) {
	raw, err := o.MarshalJSON()
	if err != nil {
		return nil, err
	}
	a := &v1alpha1.Application{}
	if err := yaml.Unmarshal(raw, a); err != nil {
		return nil, fmt.Errorf("Application %s: %w", o.GetName(), err)
	}
	if a.Namespace == "" {
		a.Namespace = defaultNS
	}
	if a.Namespace == "" {
		a.Namespace = v1alpha1.DefaultControlPlaneNamespace
	}
	return a, nil
}

// localTree serves every repository a git generator names from root.
type localTree string

func (l localTree) Checkout(string, string) (string, error) { return string(l), nil }

func generate(root string, o *unstructured.Unstructured) ([]*v1alpha1.Application, error) {
	raw, err := o.MarshalJSON()
	if err != nil {
		return nil, err
	}
	set := &v1alpha1.ApplicationSet{}
	if err := yaml.Unmarshal(raw, set); err != nil {
		return nil, err
	}
	if set.Namespace == "" {
		set.Namespace = v1alpha1.DefaultControlPlaneNamespace
	}
	apps, _, err := appset.Apps(set, appset.Inputs{Repos: localTree(root), Clusters: []appset.Cluster{appset.InCluster}})
	return apps, err
}

// render is app's objects at this side's revision; skip when a source is
// in another repository (not rendered: this compares one repository).
func (d *differ) render(r *render.Renderer, s *side, app *v1alpha1.Application) ([]*unstructured.Unstructured, bool, error) {
	sources := app.Spec.Sources
	if app.Spec.Source != nil {
		sources = []v1alpha1.ApplicationSource{*app.Spec.Source}
	}
	if len(sources) == 0 {
		return nil, false, fmt.Errorf("no source")
	}
	refs := map[string]string{}
	for _, src := range sources {
		if src.Chart != "" || !d.mine[source.RepoIdentity(src.RepoURL)] {
			return nil, true, nil
		}
		if src.Ref != "" {
			refs[src.Ref] = s.root
		}
	}
	var out []*unstructured.Unstructured
	for _, src := range sources {
		if src.Ref != "" && src.Path == "" {
			continue
		}
		res, err := r.Render(render.Input{Root: s.root, Revision: s.sha, Source: src, AppName: app.Name, Namespace: app.Spec.Destination.Namespace, Refs: refs})
		if err != nil {
			return nil, false, err
		}
		out = append(out, res.Objects...)
	}
	return out, false, nil
}

// text is objs as YAML documents sorted by kind, namespace and name, with
// Secret values masked.
func (d *differ) text(objs []*unstructured.Unstructured) string {
	type doc struct{ key, text string }
	docs := make([]doc, 0, len(objs))
	for _, o := range objs {
		c := o.DeepCopy()
		d.masker.Secret(c)
		data, err := yaml.Marshal(c.Object)
		if err != nil {
			data = []byte(err.Error())
		}
		docs = append(docs, doc{key: manifest.Key(o), text: "# " + o.GetKind() + " " + qualified(o) + "\n" + string(data)})
	}
	sort.Slice(docs, func(i, j int) bool { return docs[i].key < docs[j].key })
	var b strings.Builder
	for _, dc := range docs {
		b.WriteString("---\n")
		b.WriteString(dc.text)
	}
	return b.String()
}

func qualified(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return ns + "/" + o.GetName()
	}
	return o.GetName()
}

func unified(a, b, app string) string {
	out, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(a), B: difflib.SplitLines(b),
		FromFile: app + " (base)", ToFile: app + " (head)", Context: 3,
	})
	return out
}
