package appset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// Render turns each parameter set into an Application of the set (not
// yet owned: the controller adds the owner reference). An element whose
// rendering fails, whose name is invalid, or whose name another element
// already produced is an error naming the element.
func Render(set *v1alpha1.ApplicationSet, params []Params) ([]*v1alpha1.Application, error) {
	tmpl, err := json.Marshal(set.Spec.Template)
	if err != nil {
		return nil, err
	}
	var generic map[string]any
	if err := json.Unmarshal(tmpl, &generic); err != nil {
		return nil, err
	}
	seen := map[string]int{}
	var out []*v1alpha1.Application
	for i, p := range params {
		app, err := renderOne(set, generic, p)
		if err != nil {
			return nil, fmt.Errorf("element %d (%s): %w", i, describe(p), err)
		}
		if j, dup := seen[app.Name]; dup {
			return nil, fmt.Errorf("elements %d (%s) and %d (%s) both generate Application %q", j, describe(params[j]), i, describe(p), app.Name)
		}
		seen[app.Name] = i
		out = append(out, app)
	}
	return out, nil
}

func describe(p Params) string {
	data, _ := json.Marshal(p)
	if len(data) > 200 {
		data = append(data[:200], "…"...)
	}
	return string(data)
}

func renderOne(set *v1alpha1.ApplicationSet, generic map[string]any, p Params) (*v1alpha1.Application, error) {
	render := fastTemplate
	if set.Spec.GoTemplate {
		render = goTemplate(set.Spec.GoTemplateOptions)
	}
	rendered, err := walk(generic, func(s string) (string, error) { return render(s, p) })
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(rendered)
	if err != nil {
		return nil, err
	}
	if set.Spec.TemplatePatch != nil && set.Spec.GoTemplate {
		patch, err := goTemplate(set.Spec.GoTemplateOptions)(*set.Spec.TemplatePatch, p)
		if err != nil {
			return nil, fmt.Errorf("templatePatch: %w", err)
		}
		patchJSON, err := yaml.YAMLToJSON([]byte(patch))
		if err != nil {
			return nil, fmt.Errorf("templatePatch: %w", err)
		}
		if data, err = strategicpatch.StrategicMergePatch(data, patchJSON, v1alpha1.ApplicationSetTemplate{}); err != nil {
			return nil, fmt.Errorf("templatePatch: %w", err)
		}
	}
	var t v1alpha1.ApplicationSetTemplate
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return nil, fmt.Errorf("the rendered template is no Application: %w", err)
	}
	app := &v1alpha1.Application{Spec: t.Spec}
	app.APIVersion, app.Kind = v1alpha1.GroupVersion.String(), "Application"
	app.Name = t.Name
	app.Namespace = t.Namespace
	if app.Namespace == "" {
		app.Namespace = set.Namespace
	}
	if errs := validation.IsDNS1123Subdomain(app.Name); len(errs) > 0 {
		return nil, fmt.Errorf("invalid Application name %q: %s", app.Name, strings.Join(errs, "; "))
	}
	app.Labels = t.Labels
	if app.Labels == nil {
		app.Labels = map[string]string{}
	}
	app.Labels[v1alpha1.AppSetLabel] = set.Name
	app.Annotations = t.Annotations
	app.Finalizers = t.Finalizers
	preserve := set.Spec.SyncPolicy != nil && set.Spec.SyncPolicy.PreserveResourcesOnDeletion
	if !preserve && !slices.Contains(app.Finalizers, v1alpha1.ResourcesFinalizer) {
		app.Finalizers = append(app.Finalizers, v1alpha1.ResourcesFinalizer)
	}
	return app, nil
}

// walk renders every string of a JSON value, keys of maps included.
func walk(v any, render func(string) (string, error)) (any, error) {
	switch t := v.(type) {
	case string:
		return render(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			rk, err := render(k)
			if err != nil {
				return nil, err
			}
			rx, err := walk(x, render)
			if err != nil {
				return nil, err
			}
			out[rk] = rx
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			rx, err := walk(x, render)
			if err != nil {
				return nil, err
			}
			out[i] = rx
		}
		return out, nil
	}
	return v, nil
}

var tag = regexp.MustCompile(`\{\{([^{}]*)\}\}`)

// fastTemplate replaces {{key}} (spaces allowed) with flat parameters, as
// Argo CD's default templates do; unknown keys stay as written.
func fastTemplate(s string, p Params) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	return tag.ReplaceAllStringFunc(s, func(m string) string {
		key := strings.TrimSpace(m[2 : len(m)-2])
		if v, ok := p[key]; ok {
			return fmt.Sprint(v)
		}
		return m
	}), nil
}

// funcs are Sprig's functions without env, expandenv and getHostByName
// (as Argo CD), plus normalize, slugify, toYaml and fromYaml.
var funcs = func() template.FuncMap {
	f := sprig.TxtFuncMap()
	for _, drop := range []string{"env", "expandenv", "getHostByName"} {
		delete(f, drop)
	}
	f["normalize"] = normalize
	f["slugify"] = slugify
	f["toYaml"] = func(v any) (string, error) {
		data, err := yaml.Marshal(v)
		return strings.TrimSuffix(string(data), "\n"), err
	}
	f["fromYaml"] = func(s string) (map[string]any, error) {
		var out map[string]any
		err := yaml.Unmarshal([]byte(s), &out)
		return out, err
	}
	return f
}()

// goTemplate renders with text/template and the options (e.g.
// missingkey=error).
func goTemplate(options []string) func(string, Params) (string, error) {
	return func(s string, p Params) (string, error) {
		if !strings.Contains(s, "{{") {
			return s, nil
		}
		t, err := template.New("").Funcs(funcs).Option(options...).Parse(s)
		if err != nil {
			return "", fmt.Errorf("template %q: %w", s, err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, map[string]any(p)); err != nil {
			return "", fmt.Errorf("template %q: %w", s, err)
		}
		return buf.String(), nil
	}
}

// slugify is Argo CD's: lower case, runs of other characters as one "-",
// trimmed, at most 50 characters.
func slugify(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteRune('-')
			dash = true
		}
	}
	out := strings.TrimSuffix(b.String(), "-")
	if len(out) > 50 {
		out = strings.TrimSuffix(out[:50], "-")
	}
	return out
}
