// Package desired answers one question: what does Git say an Application
// should run? It resolves the revision, checks it out, renders it, gives
// every object its namespace, enforces the AppProject's rules on every
// object and stamps the app's tracking label and annotation. The
// controller, `mlcd up`'s bootstrap and the diff of the CLI and the API
// server all call it, so a diff predicts a sync. It never writes to a
// cluster.
package desired

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/render"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// Normalizer gives objects their namespace from the API server's scopes
// (apply.Applier).
type Normalizer interface {
	Normalize(objs []*unstructured.Unstructured, namespace string) error
}

// Engine computes desired states.
type Engine struct {
	Sources *source.Cache
	// Charts serves sources with spec.source.chart (Helm repositories).
	Charts     *source.Charts
	Renderer   *render.Renderer
	Normalizer Normalizer

	// keys memoizes contentKey: a commit's content never changes, so an
	// app at rest reads no file and walks no tree again.
	keysMu sync.Mutex
	keys   map[string]contentKeyed
}

type contentKeyed struct {
	key string
	ok  bool
}

// Reason says which kind of failure an Error is; the controller turns it
// into the Application's condition type.
type Reason string

// Reasons, as Argo CD's condition types.
const (
	// ReasonComparison: the comparison could not complete (repository,
	// revision, render).
	ReasonComparison Reason = v1alpha1.ConditionComparisonError
	// ReasonInvalidSpec: the app or its project forbids what Git holds.
	ReasonInvalidSpec Reason = v1alpha1.ConditionInvalidSpecError
)

// Error is a desired state that could not be computed.
type Error struct {
	Reason Reason
	// Transient errors may pass by themselves (a network failure); the
	// others need a change in Git or in the app.
	Transient bool
	Err       error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(reason Reason, transient bool, format string, args ...any) *Error {
	return &Error{Reason: reason, Transient: transient, Err: fmt.Errorf(format, args...)}
}

// Resolve returns the commit the source's targetRevision names, fetching
// when refresh is set or the last fetch is older than the cache's age.
//
// A source with a chart resolves in its Helm repository instead: the
// revision is the chart version targetRevision (a version or a semver
// range) names.
func (e *Engine) Resolve(ctx context.Context, src v1alpha1.ApplicationSource, creds source.Credentials, refresh bool) (string, error) {
	if src.Chart != "" {
		if e.Charts == nil {
			return "", fail(ReasonComparison, false, "chart %s: this engine reads no Helm repositories", src.Chart)
		}
		v, err := e.Charts.Resolve(ctx, src.RepoURL, src.Chart, src.TargetRevision, creds, refresh)
		if err != nil {
			return "", &Error{Reason: ReasonComparison, Transient: !errors.Is(err, source.ErrChartNotFound), Err: err}
		}
		return v, nil
	}
	sha, err := e.Sources.Resolve(ctx, src.RepoURL, src.TargetRevision, creds, refresh)
	if err != nil {
		return "", &Error{Reason: ReasonComparison, Transient: !errors.Is(err, source.ErrRevisionNotFound), Err: err}
	}
	return sha, nil
}

// Input is what one desired state depends on.
type Input struct {
	// Owner is the app as namespace/name, stamped on every object.
	Owner string
	// AppName is the instance label and the default Helm release name.
	AppName     string
	Source      v1alpha1.ApplicationSource
	Destination v1alpha1.ApplicationDestination
	Revision    string
	// Project's rules are enforced on every object; nil allows all.
	Project *v1alpha1.AppProject
	// Credentials for a chart repository (Git sources are checked out
	// from what Resolve fetched).
	Credentials source.Credentials
	// Refs are a multi-source app's `ref` checkouts by name; RefsKey
	// names their revisions (the render cache's key).
	Refs    map[string]string
	RefsKey string
	// GeneratePaths is the app's manifest-generate-paths annotation: more
	// paths whose content the render depends on.
	GeneratePaths string
	// CredentialsFor, when set, gives the credentials of a chart
	// dependency's repository (the app's own Secrets for that URL).
	CredentialsFor func(ctx context.Context, repoURL string) (source.Credentials, error)
}

// State is an app's desired state at one revision.
type State struct {
	Revision string
	// Root is the checkout; read only.
	Root     string
	Rendered *render.Result
	// Objects are namespaced, permitted and stamped; the caller may
	// annotate them further.
	Objects []*unstructured.Unstructured
}

// dependency fetches a chart dependency from its repository through the
// same chart cache as `source.chart`, with that repository's credentials.
func (e *Engine) dependency(ctx context.Context, in Input) func(repoURL, name, constraint string) (string, error) {
	if e.Charts == nil {
		return nil
	}
	return func(repoURL, name, constraint string) (string, error) {
		// A dependency is a source like any other: the project must allow
		// its repository before any request is made to it.
		if in.Project != nil {
			if err := in.Project.PermitsSource(repoURL); err != nil {
				return "", err
			}
		}
		var creds source.Credentials
		if in.CredentialsFor != nil {
			c, err := in.CredentialsFor(ctx, repoURL)
			if err != nil {
				return "", fmt.Errorf("read repository credentials: %w", err)
			}
			creds = c
		}
		version, err := e.Charts.Resolve(ctx, repoURL, name, constraint, creds, false)
		if err != nil {
			return "", err
		}
		return e.Charts.Fetch(ctx, repoURL, name, version, creds)
	}
}

// Build checks out in.Revision, renders, normalizes, enforces the project
// and stamps ownership.
func (e *Engine) Build(ctx context.Context, in Input) (*State, error) {
	src := in.Source
	var root string
	var err error
	if src.Chart != "" {
		// The chart's own directory is the tree: valueFiles are the
		// chart's files, as in Argo CD.
		if e.Charts == nil {
			return nil, fail(ReasonComparison, false, "chart %s: this engine reads no Helm repositories", src.Chart)
		}
		if root, err = e.Charts.Fetch(ctx, src.RepoURL, src.Chart, in.Revision, in.Credentials); err != nil {
			return nil, &Error{Reason: ReasonComparison, Transient: !errors.Is(err, source.ErrChartNotFound), Err: err}
		}
		src.Path = "."
		if src.Helm == nil {
			src.Helm = &v1alpha1.ApplicationSourceHelm{}
		}
	} else if root, err = e.Sources.Checkout(ctx, in.Source.RepoURL, in.Revision); err != nil {
		return nil, &Error{Reason: ReasonComparison, Transient: true, Err: err}
	}
	rev := in.Revision
	if src.Chart != "" {
		rev = src.Chart + "-" + in.Revision // the render cache's key
	} else if key, ok := e.cachedContentKey(root, in); ok {
		// The same inputs at another commit render the same: a commit
		// that leaves this app's files alone renders nothing again.
		rev = key
	}
	if in.RefsKey != "" {
		rev += "+" + in.RefsKey
	}
	rendered, err := e.Renderer.Render(render.Input{Root: root, Revision: rev, Source: src, AppName: in.AppName, Namespace: in.Destination.Namespace, Refs: in.Refs, Dependency: e.dependency(ctx, in)})
	if err != nil {
		return nil, fail(ReasonComparison, false, "rendering %s at %s: %s", in.Source.Path, v1alpha1.ShortSHA(in.Revision), err)
	}
	// The render is cached and shared: work on copies.
	objs := make([]*unstructured.Unstructured, len(rendered.Objects))
	for i, o := range rendered.Objects {
		objs[i] = o.DeepCopy()
	}
	if err := e.Normalizer.Normalize(objs, in.Destination.Namespace); err != nil {
		// A missing CRD may be on its way (another app installs it):
		// retried with backoff, not only at the next poll.
		return nil, fail(ReasonComparison, errors.Is(err, apply.ErrUnknownKind), "%s", err)
	}
	if in.Project != nil {
		if err := Permitted(in.Project, in.Destination, objs); err != nil {
			return nil, &Error{Reason: ReasonInvalidSpec, Err: err}
		}
	}
	Stamp(objs, in.Owner, in.AppName)
	return &State{Revision: in.Revision, Root: root, Rendered: rendered, Objects: objs}, nil
}

// Permitted checks every object against the project: its kind (cluster
// and namespace resource lists) and its namespace (destinations). The
// error names the rule and the object.
func Permitted(proj *v1alpha1.AppProject, dest v1alpha1.ApplicationDestination, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if err := proj.PermitsKind(gvk.Group, gvk.Kind, o.GetNamespace() != ""); err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
		}
		if ns := o.GetNamespace(); ns != "" && ns != dest.Namespace {
			if err := proj.PermitsDestination(v1alpha1.ApplicationDestination{Server: dest.Server, Name: dest.Name, Namespace: ns}); err != nil {
				return fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
			}
		}
	}
	return nil
}

// Stamp sets the tracking label (app name) and annotation (owner) that
// mark an object as applied by this app.
func Stamp(objs []*unstructured.Unstructured, owner, appName string) {
	for _, o := range objs {
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		if appName != "" {
			labels[manifest.InstanceLabel] = appName
		}
		o.SetLabels(labels)
		ann := o.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		if owner != "" {
			ann[manifest.AppAnnotation] = owner
		}
		o.SetAnnotations(ann)
	}
}

// cachedContentKey is contentKey, computed once per commit and inputs.
func (e *Engine) cachedContentKey(root string, in Input) (string, bool) {
	id, _ := json.Marshal(struct {
		Src      v1alpha1.ApplicationSource
		Rev, Gen string
		Refs     int
	}{in.Source, in.Revision, in.GeneratePaths, len(in.Refs)})
	e.keysMu.Lock()
	k, hit := e.keys[string(id)]
	e.keysMu.Unlock()
	if hit {
		return k.key, k.ok
	}
	k.key, k.ok = e.contentKey(root, in)
	e.keysMu.Lock()
	if e.keys == nil || len(e.keys) > 10000 {
		e.keys = map[string]contentKeyed{}
	}
	e.keys[string(id)] = k
	e.keysMu.Unlock()
	return k.key, k.ok
}

// contentKey names a Git source's render inputs by content, not commit:
// the Git hashes of the paths InputPaths lists. ok is false — the commit
// is the key — when those paths cannot be bounded or do not resolve.
func (e *Engine) contentKey(root string, in Input) (string, bool) {
	if e.Sources == nil {
		return "", false
	}
	paths, ok := InputPaths(root, in)
	if !ok {
		return "", false
	}
	h := sha256.New()
	for _, p := range paths {
		hash, ok := e.Sources.PathHash(in.Source.RepoURL, in.Revision, p)
		if !ok {
			return "", false // missing files: the render reports them
		}
		fmt.Fprintf(h, "%s=%s\n", p, hash)
	}
	return "content:" + hex.EncodeToString(h.Sum(nil)), true
}

// InputPaths lists the repository paths (slash-separated, relative to the
// checkout root) whose content a Git source's render reads: the app's
// path, the paths of its manifest-generate-paths annotation, its chart's
// local (file://) dependencies and the values files it reads from
// elsewhere in the repository. ok is false when the inputs cannot be
// bounded that way: a multi-source app, a Kustomize source that reaches
// outside its path, a values file from another source or a URL, a path
// that leaves the repository. It is the one answer to "does this commit
// change what the app renders?": the render cache's content key and the
// wake-up of apps a fetched commit touched both ask it.
func InputPaths(root string, in Input) ([]string, bool) {
	src := in.Source
	if len(in.Refs) > 0 || src.Chart != "" {
		return nil, false
	}
	base := source.RepoPath(src.Path)
	paths := append([]string{base}, source.GeneratePaths(base, in.GeneratePaths)...)
	add := func(p string) { paths = append(paths, p) }
	dir := filepath.Join(root, filepath.FromSlash(base))
	for _, k := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if data, err := os.ReadFile(filepath.Join(dir, k)); err == nil {
			if bytes.Contains(data, []byte("..")) || bytes.Contains(data, []byte("://")) {
				return nil, false // bases or resources elsewhere: the commit decides
			}
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, "Chart.yaml")); err == nil {
		var chart struct {
			Dependencies []struct {
				Repository string `json:"repository"`
			} `json:"dependencies"`
		}
		if yaml.Unmarshal(data, &chart) != nil {
			return nil, false
		}
		for _, d := range chart.Dependencies {
			if local, ok := strings.CutPrefix(d.Repository, "file://"); ok {
				add(path.Join(base, local))
			}
		}
		if src.Helm != nil {
			for _, vf := range src.Helm.ValueFiles {
				if strings.HasPrefix(vf, "$") || strings.Contains(vf, "://") {
					return nil, false
				}
				add(path.Join(base, vf))
			}
		}
	}
	for _, p := range paths {
		if p == ".." || strings.HasPrefix(p, "../") {
			return nil, false
		}
	}
	return paths, true
}

// Touches reports whether a commit that changed the files changed (at
// in.Revision) can change what the app renders: a changed file lies under
// one of its InputPaths, or those cannot be bounded.
func (e *Engine) Touches(ctx context.Context, in Input, changed []string) bool {
	root, err := e.Sources.Checkout(ctx, in.Source.RepoURL, in.Revision)
	if err != nil {
		return true // its own reconcile reports the failure
	}
	paths, ok := InputPaths(root, in)
	return !ok || source.AnyUnder(paths, changed)
}
