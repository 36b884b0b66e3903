package render

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	ci "helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// helmTemplate renders the chart at dir as `helm template` would: values
// files (relative to the chart dir), then inline values, then parameters.
func helmTemplate(in Input, dir string) ([]*unstructured.Unstructured, map[string]any, error) {
	chartPath := rel(in.Root, dir)
	chrt, err := loader.Load(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load chart %s: %s", chartPath, manifest.OneLine(err))
	}
	if err := resolveDependencies(in, chrt, chartPath); err != nil {
		return nil, nil, err
	}
	vals := map[string]any{}
	h := in.Source.Helm
	releaseName := in.AppName
	if h != nil {
		if h.ReleaseName != "" {
			releaseName = h.ReleaseName
		}
		for _, vf := range h.ValueFiles {
			relToRoot := filepath.ToSlash(filepath.Join(chartPath, vf))
			root := in.Root
			if ref, rest, ok := strings.Cut(vf, "/"); ok && strings.HasPrefix(ref, "$") {
				// A multi-source app's value file from its `ref` source.
				r, known := in.Refs[strings.TrimPrefix(ref, "$")]
				if !known {
					return nil, nil, fmt.Errorf("values file %s: no source of the app has ref %q", vf, strings.TrimPrefix(ref, "$"))
				}
				root, relToRoot = r, rest
			} else if filepath.IsAbs(vf) {
				return nil, nil, fmt.Errorf("values file %s: absolute paths are not allowed", vf)
			}
			p, err := source.Join(root, relToRoot)
			if err != nil {
				if os.IsNotExist(err) {
					if h.IgnoreMissingValueFiles {
						continue
					}
					return nil, nil, fmt.Errorf("values file %s not found in %s", vf, chartPath)
				}
				return nil, nil, fmt.Errorf("values file %s: %s", vf, err)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, nil, fmt.Errorf("values file %s: %w", relToRoot, err)
			}
			var fileVals map[string]any
			if err := yaml.Unmarshal(data, &fileVals); err != nil {
				return nil, nil, fmt.Errorf("values file %s: invalid YAML: %s", relToRoot, manifest.OneLine(err))
			}
			mergeMaps(vals, fileVals)
		}
		if h.Values != "" {
			var inline map[string]any
			if err := yaml.Unmarshal([]byte(h.Values), &inline); err != nil {
				return nil, nil, fmt.Errorf("helm.values: invalid YAML: %s", manifest.OneLine(err))
			}
			mergeMaps(vals, inline)
		}
		if h.ValuesObject != nil && len(h.ValuesObject.Raw) > 0 {
			var obj map[string]any
			if err := yaml.Unmarshal(h.ValuesObject.Raw, &obj); err != nil {
				return nil, nil, fmt.Errorf("helm.valuesObject: %s", manifest.OneLine(err))
			}
			mergeMaps(vals, obj)
		}
		for _, p := range h.Parameters {
			set := p.Name + "=" + p.Value
			var err error
			if p.ForceString {
				err = strvals.ParseIntoString(set, vals)
			} else {
				err = strvals.ParseInto(set, vals)
			}
			if err != nil {
				return nil, nil, fmt.Errorf("helm parameter %s: %s", p.Name, manifest.OneLine(err))
			}
		}
	}
	opts := common.ReleaseOptions{Name: releaseName, Namespace: in.Namespace, Revision: 1, IsInstall: true}
	renderVals, err := chartutil.ToRenderValues(chrt, vals, opts, common.DefaultCapabilities.Copy())
	if err != nil {
		return nil, nil, fmt.Errorf("chart %s values: %s", chartPath, manifest.OneLine(err))
	}
	files, err := renderBounded(chrt, renderVals)
	if errors.Is(err, ErrRenderTimeout) {
		return nil, nil, fmt.Errorf("chart %s: %w", chartPath, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("chart %s: template error: %s", chartPath, manifest.OneLine(err))
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []*unstructured.Unstructured
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") || strings.HasSuffix(name, "NOTES.txt") || strings.TrimSpace(files[name]) == "" {
			continue
		}
		if strings.Contains(name, "/tests/") {
			continue
		}
		objs, err := manifest.Parse(name, []byte(files[name]))
		if err != nil {
			return nil, nil, fmt.Errorf("chart %s: %s", chartPath, err)
		}
		for _, o := range objs {
			if isHelmHook(o) {
				continue
			}
			out = append(out, o)
		}
	}
	// Chart defaults under the user's values, as templates saw them.
	merged := map[string]any{}
	switch v := renderVals["Values"].(type) {
	case common.Values:
		mergeMaps(merged, v.AsMap())
	case map[string]any:
		mergeMaps(merged, v)
	}
	return out, merged, nil
}

// isHelmHook skips test hooks, which a sync must not create.
func isHelmHook(o *unstructured.Unstructured) bool {
	hook := o.GetAnnotations()["helm.sh/hook"]
	return strings.Contains(hook, "test")
}

func mergeMaps(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeMaps(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// ValueAt reads a dotted key ("model.version") from values as a string.
func ValueAt(values map[string]any, key string) (string, bool) {
	var cur any = values
	for _, part := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			if cv, ok2 := cur.(common.Values); ok2 {
				m = cv
			} else {
				return "", false
			}
		}
		if cur, ok = m[part]; !ok {
			return "", false
		}
	}
	switch v := cur.(type) {
	case string:
		return v, true
	case nil, map[string]any, []any:
		return "", false
	default:
		return fmt.Sprint(v), true
	}
}

// resolveDependencies completes a chart's Chart.yaml dependencies as
// `helm dependency build` does, in memory: one vendored in charts/ is
// kept; a `file://` one is loaded from its path, which must stay inside
// the repository; one from a chart repository is fetched through
// in.Dependency (cached by name, version and digest). Anything else is
// an error naming the dependency — Helm would render without it,
// silently.
func resolveDependencies(in Input, c any, chartPath string) error {
	v2, ok := c.(*chartv2.Chart)
	if !ok || v2.Metadata == nil {
		return nil
	}
	have := map[string]bool{}
	for _, d := range v2.Dependencies() {
		if d.Metadata != nil {
			have[d.Metadata.Name] = true
		}
	}
	for _, d := range v2.Metadata.Dependencies {
		if have[d.Name] {
			continue
		}
		var dir string
		switch {
		case strings.HasPrefix(d.Repository, "file://"):
			p := filepath.ToSlash(filepath.Join(chartPath, strings.TrimPrefix(d.Repository, "file://")))
			local, err := source.Join(in.Root, p)
			if err != nil {
				return fmt.Errorf("chart %s: dependency %s at %s: %s", chartPath, d.Name, d.Repository, manifest.OneLine(err))
			}
			dir = local
		case (strings.HasPrefix(d.Repository, "https://") || strings.HasPrefix(d.Repository, "http://") || strings.HasPrefix(d.Repository, "oci://")) && in.Dependency != nil:
			fetched, err := in.Dependency(d.Repository, d.Name, d.Version)
			if err != nil {
				return fmt.Errorf("chart %s: dependency %s %s from %s: %s", chartPath, d.Name, d.Version, d.Repository, manifest.OneLine(err))
			}
			dir = fetched
		default:
			return fmt.Errorf("chart %s depends on %s %s (repository %q), which is not in its charts/ directory and cannot be fetched: use a file://, https:// or oci:// repository, or vendor it with `helm dependency build`", chartPath, d.Name, d.Version, d.Repository)
		}
		dep, err := loader.Load(dir)
		if err != nil {
			return fmt.Errorf("chart %s: load dependency %s: %s", chartPath, d.Name, manifest.OneLine(err))
		}
		dc, ok := dep.(*chartv2.Chart)
		if !ok {
			return fmt.Errorf("chart %s: dependency %s is not a v2 chart", chartPath, d.Name)
		}
		v2.AddDependency(dc)
		have[d.Name] = true
	}
	return nil
}

// boundedFuncMap is built once: Helm copies it into each render's own map.
var boundedFuncMap = sync.OnceValue(boundedFuncs)

// ErrRenderTimeout is a render that ran out of time.
var ErrRenderTimeout = errors.New("render timed out")

// renderTimeout is RenderTimeout; tests shorten it.
var renderTimeout = RenderTimeout

// renderBounded renders with Helm's engine and the bounded Sprig functions,
// within renderTimeout.
func renderBounded(chrt ci.Charter, vals common.Values) (map[string]string, error) {
	type result struct {
		files map[string]string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		files, err := engine.Engine{CustomTemplateFuncs: boundedFuncMap()}.RenderWithContext(context.Background(), chrt, vals)
		done <- result{files, err}
	}()
	t := time.NewTimer(renderTimeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.files, r.err
	case <-t.C:
		return nil, fmt.Errorf("%w: rendering took longer than %s (a template that loops?)", ErrRenderTimeout, renderTimeout)
	}
}
