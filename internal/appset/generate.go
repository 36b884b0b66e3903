// Package appset turns ApplicationSets into Applications, purely: the
// generators (list, clusters, git directories and files, matrix, merge)
// produce parameter sets from inputs the caller fetched (a checkout per
// repository, the known clusters), and the template renders each into an
// Application, with Argo CD's fasttemplate-style `{{path.basename}}` or,
// with goTemplate, Go templates and the Sprig functions Argo CD exposes.
// The controller and `mlcd appset generate` call the same code, so the
// preview is what the controller creates.
package appset

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// Params is one parameter set.
type Params map[string]any

// Repos gives the checkout (a directory) of a repository at a revision.
type Repos interface {
	Checkout(repoURL, revision string) (string, error)
}

// Cluster is a destination cluster a clusters generator may yield.
type Cluster struct {
	Name, Server string
	Labels       map[string]string
	Annotations  map[string]string
}

// InCluster is the cluster mlcd runs in, as Argo CD names it.
var InCluster = Cluster{Name: "in-cluster", Server: v1alpha1.InClusterServer}

// Inputs are what generators read.
type Inputs struct {
	Repos    Repos
	Clusters []Cluster
}

// GeneratorError names the generator that failed.
type GeneratorError struct {
	Index int
	Kind  string
	Err   error
}

func (e *GeneratorError) Error() string {
	return fmt.Sprintf("generator %d (%s): %s", e.Index, e.Kind, e.Err)
}
func (e *GeneratorError) Unwrap() error { return e.Err }

// Generate runs every generator of the set; the parameter sets are
// concatenated in generator order.
func Generate(set *v1alpha1.ApplicationSet, in Inputs) ([]Params, error) {
	var out []Params
	for i, g := range set.Spec.Generators {
		ps, err := generate(g, in, set.Spec.GoTemplate, 0)
		if err != nil {
			return nil, &GeneratorError{Index: i, Kind: kindOf(g), Err: err}
		}
		out = append(out, ps...)
	}
	return out, nil
}

func kindOf(g v1alpha1.ApplicationSetGenerator) string {
	switch {
	case g.List != nil:
		return "list"
	case g.Clusters != nil:
		return "clusters"
	case g.Git != nil:
		return "git"
	case g.Matrix != nil:
		return "matrix"
	case g.Merge != nil:
		return "merge"
	case g.SCMProvider != nil:
		return "scmProvider"
	case g.PullRequest != nil:
		return "pullRequest"
	case g.Plugin != nil:
		return "plugin"
	case g.ClusterDecisionResource != nil:
		return "clusterDecisionResource"
	}
	return "unknown"
}

func generate(g v1alpha1.ApplicationSetGenerator, in Inputs, goTemplate bool, depth int) ([]Params, error) {
	var ps []Params
	var err error
	switch {
	case g.List != nil:
		ps, err = listParams(g.List)
	case g.Clusters != nil:
		ps, err = clusterParams(g.Clusters, in.Clusters, goTemplate)
	case g.Git != nil:
		ps, err = gitParams(g.Git, in.Repos, goTemplate)
	case g.Matrix != nil:
		ps, err = matrixParams(g.Matrix, in, goTemplate, depth)
	case g.Merge != nil:
		ps, err = mergeParams(g.Merge, in, goTemplate, depth)
	default:
		return nil, fmt.Errorf("%s generators are not supported by mlcd", kindOf(g))
	}
	if err != nil {
		return nil, err
	}
	if g.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(g.Selector)
		if err != nil {
			return nil, fmt.Errorf("selector: %w", err)
		}
		var kept []Params
		for _, p := range ps {
			if sel.Matches(labels.Set(flatStrings(p))) {
				kept = append(kept, p)
			}
		}
		ps = kept
	}
	return ps, nil
}

func listParams(l *v1alpha1.ListGenerator) ([]Params, error) {
	var out []Params
	for i, e := range l.Elements {
		var p Params
		if err := json.Unmarshal(e.Raw, &p); err != nil {
			return nil, fmt.Errorf("element %d is not an object: %w", i, err)
		}
		out = append(out, p)
	}
	if l.ElementsYaml != "" {
		var more []Params
		if err := yaml.Unmarshal([]byte(l.ElementsYaml), &more); err != nil {
			return nil, fmt.Errorf("elementsYaml: %w", err)
		}
		out = append(out, more...)
	}
	return out, nil
}

func clusterParams(g *v1alpha1.ClusterGenerator, clusters []Cluster, goTemplate bool) ([]Params, error) {
	sel, err := metav1.LabelSelectorAsSelector(&g.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	var out []Params
	for _, c := range clusters {
		if !sel.Matches(labels.Set(c.Labels)) {
			continue
		}
		p := Params{"name": c.Name, "nameNormalized": normalize(c.Name), "server": c.Server}
		meta := map[string]any{"labels": toAny(c.Labels), "annotations": toAny(c.Annotations)}
		values := toAny(g.Values)
		if goTemplate {
			p["metadata"], p["values"] = meta, values
		} else {
			for k, v := range c.Labels {
				p["metadata.labels."+k] = v
			}
			for k, v := range c.Annotations {
				p["metadata.annotations."+k] = v
			}
			for k, v := range g.Values {
				p["values."+k] = v
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func toAny(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// gitParams yields, for directories, one set per matching directory
// (path, path.basename, path.basenameNormalized, path[n]); for files, the
// flattened keys of each matching JSON/YAML file plus its path.
func gitParams(g *v1alpha1.GitGenerator, repos Repos, goTemplate bool) ([]Params, error) {
	if repos == nil {
		return nil, errors.New("no repository access")
	}
	root, err := repos.Checkout(g.RepoURL, g.Revision)
	if err != nil {
		return nil, err
	}
	var out []Params
	switch {
	case len(g.Directories) > 0:
		dirs, err := matches(root, g.Directories, true)
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			out = append(out, pathParams(d, g.PathParamPrefix, goTemplate))
		}
	case len(g.Files) > 0:
		var items []v1alpha1.GitDirectoryGeneratorItem
		for _, f := range g.Files {
			items = append(items, v1alpha1.GitDirectoryGeneratorItem{Path: f.Path, Exclude: f.Exclude})
		}
		files, err := matches(root, items, false)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			full, err := source.Join(root, f)
			if err != nil {
				return nil, err
			}
			data, err := os.ReadFile(full)
			if err != nil {
				return nil, err
			}
			var docs []map[string]any
			var one map[string]any
			if err := yaml.Unmarshal(data, &one); err == nil && one != nil {
				docs = []map[string]any{one}
			} else if err := yaml.Unmarshal(data, &docs); err != nil {
				return nil, fmt.Errorf("%s: neither a JSON/YAML object nor a list of them: %w", f, err)
			}
			for _, doc := range docs {
				p := Params{}
				if goTemplate {
					for k, v := range doc {
						p[k] = v
					}
				} else {
					flatten("", doc, p)
				}
				for k, v := range pathParams(path.Dir(f), g.PathParamPrefix, goTemplate) {
					p[k] = v
				}
				if goTemplate {
					pp := p["path"].(map[string]any)
					pp["filename"], pp["filenameNormalized"] = path.Base(f), normalize(path.Base(f))
				} else {
					p[prefixed(g.PathParamPrefix, "path.filename")] = path.Base(f)
					p[prefixed(g.PathParamPrefix, "path.filenameNormalized")] = normalize(path.Base(f))
				}
				out = append(out, p)
			}
		}
	default:
		return nil, errors.New("git generator needs directories or files")
	}
	for _, p := range out {
		for k, v := range g.Values {
			if goTemplate {
				vals, _ := p["values"].(map[string]any)
				if vals == nil {
					vals = map[string]any{}
					p["values"] = vals
				}
				vals[k] = v
			} else {
				p["values."+k] = v
			}
		}
	}
	return out, nil
}

func prefixed(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// pathParams are Argo CD's path parameters of a directory.
func pathParams(dir, prefix string, goTemplate bool) Params {
	segs := strings.Split(dir, "/")
	base := path.Base(dir)
	if goTemplate {
		anySegs := make([]any, len(segs))
		for i, s := range segs {
			anySegs[i] = s
		}
		pp := map[string]any{"path": dir, "basename": base, "basenameNormalized": normalize(base), "segments": anySegs}
		if prefix != "" {
			return Params{prefix: map[string]any{"path": pp}}
		}
		return Params{"path": pp}
	}
	p := Params{
		prefixed(prefix, "path"):                    dir,
		prefixed(prefix, "path.basename"):           base,
		prefixed(prefix, "path.basenameNormalized"): normalize(base),
	}
	for i, s := range segs {
		p[prefixed(prefix, fmt.Sprintf("path[%d]", i))] = s
	}
	return p
}

// matches lists the directories (or files) of root matching the items'
// globs, minus those matching an exclude item, sorted. Paths are
// slash-separated and relative to root; nothing outside root is visited.
func matches(root string, items []v1alpha1.GitDirectoryGeneratorItem, dirs bool) ([]string, error) {
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if d.IsDir() && (d.Name() == ".git") {
			return fs.SkipDir
		}
		if d.IsDir() != dirs || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		include := false
		for _, it := range items {
			if ok, _ := path.Match(it.Path, rel); ok {
				if it.Exclude {
					return nil
				}
				include = true
			}
		}
		if include {
			found = append(found, rel)
		}
		return nil
	})
	sort.Strings(found)
	return found, err
}

// flatten writes nested keys as dotted ones (Argo CD's files generator
// without goTemplate); lists stay as JSON.
func flatten(prefix string, v any, out Params) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			flatten(key, x, out)
		}
	case []any:
		data, _ := json.Marshal(t)
		out[prefix] = string(data)
	default:
		out[prefix] = fmt.Sprint(t)
	}
}

func matrixParams(m *v1alpha1.NestedGenerator, in Inputs, goTemplate bool, depth int) ([]Params, error) {
	if len(m.Generators) != 2 {
		return nil, fmt.Errorf("matrix needs exactly 2 generators, has %d", len(m.Generators))
	}
	if depth >= 1 && (m.Generators[0].Matrix != nil || m.Generators[1].Matrix != nil) {
		return nil, errors.New("matrix generators nest at most two levels")
	}
	left, err := generate(m.Generators[0], in, goTemplate, depth+1)
	if err != nil {
		return nil, fmt.Errorf("matrix[0]: %w", err)
	}
	var out []Params
	for _, l := range left {
		right, err := generate(m.Generators[1], in, goTemplate, depth+1)
		if err != nil {
			return nil, fmt.Errorf("matrix[1]: %w", err)
		}
		for _, r := range right {
			p := Params{}
			for k, v := range l {
				p[k] = v
			}
			for k, v := range r {
				if old, dup := p[k]; dup && fmt.Sprint(old) != fmt.Sprint(v) && !goTemplate {
					return nil, fmt.Errorf("matrix: both generators set %q", k)
				}
				p[k] = v
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func mergeParams(m *v1alpha1.NestedGenerator, in Inputs, goTemplate bool, depth int) ([]Params, error) {
	if len(m.Generators) < 2 {
		return nil, errors.New("merge needs at least 2 generators")
	}
	if len(m.MergeKeys) == 0 {
		return nil, errors.New("merge needs mergeKeys")
	}
	base, err := generate(m.Generators[0], in, goTemplate, depth+1)
	if err != nil {
		return nil, fmt.Errorf("merge[0]: %w", err)
	}
	key := func(p Params) string {
		var parts []string
		for _, k := range m.MergeKeys {
			parts = append(parts, fmt.Sprint(lookup(p, k)))
		}
		return strings.Join(parts, "\x00")
	}
	for i, g := range m.Generators[1:] {
		more, err := generate(g, in, goTemplate, depth+1)
		if err != nil {
			return nil, fmt.Errorf("merge[%d]: %w", i+1, err)
		}
		byKey := map[string]Params{}
		for _, p := range more {
			byKey[key(p)] = p
		}
		for _, p := range base {
			if o, ok := byKey[key(p)]; ok {
				for k, v := range o {
					p[k] = v
				}
			}
		}
	}
	return base, nil
}

// lookup reads a dotted key: a flat key first, else a nested path.
func lookup(p Params, key string) any {
	if v, ok := p[key]; ok {
		return v
	}
	var cur any = map[string]any(p)
	for _, k := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func flatStrings(p Params) map[string]string {
	out := map[string]string{}
	for k, v := range p {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// normalize is Argo CD's basenameNormalized: lower case, characters other
// than [a-z0-9-.] as "-".
func normalize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteRune('-')
		}
	}
	return b.String()
}
