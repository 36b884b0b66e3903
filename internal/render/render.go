// Package render turns an Application source at a checked-out commit into
// Kubernetes objects: Helm charts through the Helm SDK, Kustomize through
// krusty, plain directories of YAML. Every file it reads is confined to the
// checkout (see source.Join). Results are cached by commit, path and render
// inputs, so an unchanged app is never rendered twice. It never touches a
// cluster.
package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// Input is everything a render depends on.
type Input struct {
	// Root is the checkout; Revision its commit SHA (the cache key).
	Root, Revision string
	Source         v1alpha1.ApplicationSource
	// AppName is the default Helm release name.
	AppName string
	// Namespace is the destination namespace.
	Namespace string
	// Refs are the checkouts of a multi-source app's `ref` sources, by
	// name, for `$name/…` value files.
	Refs map[string]string
	// Dependency, when set, fetches a chart dependency that is not
	// vendored in charts/ from its repository (`helm dependency build`):
	// the directory of the chart at a version the constraint allows.
	// Without it such a dependency is an error.
	Dependency func(repoURL, name, constraint string) (string, error) `json:"-"`
}

// Kind of source detected.
const (
	TypeHelm      = "Helm"
	TypeKustomize = "Kustomize"
	TypeDirectory = "Directory"
)

// Result is a render's output.
type Result struct {
	Objects []*unstructured.Unstructured
	Type    string
	// Values are the Helm values the templates saw (chart defaults,
	// values files, values, parameters); nil for other types. Read only.
	Values map[string]any
}

// Renderer renders with a cache.
type Renderer struct {
	mu    sync.Mutex
	cache map[string]*Result
	// timedOut are inputs whose render ran out of time: not started again
	// until they change (a template that loops would hold a CPU per try).
	timedOut map[string]error
	renders  atomic.Int64
	// Observe, when set, is told of every render performed (not of cache
	// hits): the source type and how long it took.
	Observe func(sourceType string, took time.Duration)
}

// New returns a Renderer.
func New() *Renderer { return &Renderer{cache: map[string]*Result{}} }

// Renders counts renders actually performed (cache misses).
func (r *Renderer) Renders() int64 { return r.renders.Load() }

func cacheKey(in Input) string {
	data, _ := json.Marshal(struct {
		Rev, App, NS string
		Src          v1alpha1.ApplicationSource
		Refs         map[string]string
	}{in.Revision, in.AppName, in.Namespace, in.Source, in.Refs})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Render returns the objects of in, from the cache when the same inputs
// were rendered before. Callers get deep copies they may modify.
func (r *Renderer) Render(in Input) (*Result, error) {
	k := cacheKey(in)
	r.mu.Lock()
	cached, ok := r.cache[k]
	timedOut := r.timedOut[k]
	r.mu.Unlock()
	if timedOut != nil {
		return nil, fmt.Errorf("%w (not rendered again until its inputs change)", timedOut)
	}
	if !ok {
		started := time.Now()
		res, err := r.render(in)
		if errors.Is(err, ErrRenderTimeout) {
			r.mu.Lock()
			if r.timedOut == nil || len(r.timedOut) > 10000 {
				r.timedOut = map[string]error{}
			}
			r.timedOut[k] = err
			r.mu.Unlock()
		}
		if err != nil {
			return nil, err
		}
		r.renders.Add(1)
		if r.Observe != nil {
			r.Observe(res.Type, time.Since(started))
		}
		r.mu.Lock()
		if len(r.cache) > 10000 {
			r.cache = map[string]*Result{}
		}
		r.cache[k] = res
		r.mu.Unlock()
		cached = res
	}
	out := &Result{Type: cached.Type, Values: cached.Values, Objects: make([]*unstructured.Unstructured, len(cached.Objects))}
	for i, o := range cached.Objects {
		out.Objects[i] = o.DeepCopy()
	}
	return out, nil
}

func (r *Renderer) render(in Input) (*Result, error) {
	path := in.Source.Path
	if path == "" {
		path = "."
	}
	dir, err := source.Join(in.Root, path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("app path %s does not exist at revision %s", path, short(in.Revision))
		}
		return nil, err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("app path %s is not a directory at revision %s", path, short(in.Revision))
	}
	if err := source.CheckConfined(in.Root, dir); err != nil {
		return nil, err
	}
	if err := checkFileSizes(in.Root, dir); err != nil {
		return nil, err
	}
	switch {
	case in.Source.Helm != nil || exists(filepath.Join(dir, "Chart.yaml")):
		objs, vals, err := helmTemplate(in, dir)
		return &Result{Objects: objs, Type: TypeHelm, Values: vals}, err
	case in.Source.Kustomize != nil || slices.ContainsFunc(KustomizationFiles, func(n string) bool { return exists(filepath.Join(dir, n)) }):
		objs, err := kustomizeBuild(in, dir)
		return &Result{Objects: objs, Type: TypeKustomize}, err
	default:
		objs, err := directory(in, dir)
		return &Result{Objects: objs, Type: TypeDirectory}, err
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func short(sha string) string { return v1alpha1.ShortSHA(sha) }

func rel(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}
