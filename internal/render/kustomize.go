package render

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// repoMount is where the checkout appears in kustomize's in-memory file
// system. Only the checkout's own files are there, so a base or resource
// outside the repository simply does not exist: confinement by construction.
const repoMount = "/repo"

func kustomizeBuild(in Input, dir string) ([]*unstructured.Unstructured, error) {
	mem := filesys.MakeFsInMemory()
	realRoot, err := filepath.EvalSymlinks(in.Root)
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(in.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil || !source.Within(realRoot, real) {
			return nil // a link out of the repository is not part of it
		}
		st, err := os.Stat(real)
		if err != nil || st.IsDir() {
			return nil
		}
		data, err := os.ReadFile(real)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.Join(repoMount, rel(in.Root, p)), data)
	})
	if err != nil {
		return nil, err
	}
	appDir := filepath.Join(repoMount, rel(in.Root, dir))
	if k := in.Source.Kustomize; k != nil {
		if err := overlay(mem, appDir, k.NamePrefix, k.NameSuffix, k.Namespace, k.CommonLabels, k.Images); err != nil {
			return nil, err
		}
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	resMap, err := krusty.MakeKustomizer(opts).Run(mem, appDir)
	if err != nil {
		msg := strings.ReplaceAll(manifest.OneLine(err), repoMount+"/", "")
		return nil, fmt.Errorf("kustomize build %s: %s", rel(in.Root, dir), msg)
	}
	// resource.Map() values hold ints kustomize cannot deep-copy: go
	// through YAML text instead.
	data, err := resMap.AsYaml()
	if err != nil {
		return nil, err
	}
	return manifest.Parse(rel(in.Root, dir), data)
}

// KustomizationFiles are the names kustomize reads a kustomization from,
// in its order of preference.
var KustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// IsKustomization reports whether the file at p is a kustomization.
func IsKustomization(p string) bool {
	return slices.Contains(KustomizationFiles, path.Base(p))
}

// overlay applies the Application's kustomize options the way Argo CD's
// `kustomize edit` does, by wrapping the app's kustomization.
func overlay(mem filesys.FileSystem, appDir, prefix, suffix, namespace string, labels map[string]string, images []string) error {
	name := ""
	for _, n := range KustomizationFiles {
		if mem.Exists(filepath.Join(appDir, n)) {
			name = filepath.Join(appDir, n)
			break
		}
	}
	if name == "" {
		return fmt.Errorf("no kustomization file in %s", strings.TrimPrefix(appDir, repoMount+"/"))
	}
	data, err := mem.ReadFile(name)
	if err != nil {
		return err
	}
	var k map[string]any
	if err := yaml.Unmarshal(data, &k); err != nil {
		return fmt.Errorf("%s: invalid YAML: %s", strings.TrimPrefix(name, repoMount+"/"), manifest.OneLine(err))
	}
	if prefix != "" {
		k["namePrefix"] = prefix + fmt.Sprint(orEmpty(k["namePrefix"]))
	}
	if suffix != "" {
		k["nameSuffix"] = fmt.Sprint(orEmpty(k["nameSuffix"])) + suffix
	}
	if namespace != "" {
		k["namespace"] = namespace
	}
	if len(labels) > 0 {
		cl, _ := k["commonLabels"].(map[string]any)
		if cl == nil {
			cl = map[string]any{}
		}
		for key, v := range labels {
			cl[key] = v
		}
		k["commonLabels"] = cl
	}
	if len(images) > 0 {
		list, _ := k["images"].([]any)
		for _, img := range images {
			list = append(list, ParseImage(img))
		}
		k["images"] = list
	}
	out, err := yaml.Marshal(k)
	if err != nil {
		return err
	}
	return mem.WriteFile(name, out)
}

func orEmpty(v any) any {
	if v == nil {
		return ""
	}
	return v
}

// ParseImage reads Argo CD's image override forms: name=newName:tag,
// name:tag, name@digest.
func ParseImage(s string) map[string]any {
	img := map[string]any{}
	name, repl, hasEq := strings.Cut(s, "=")
	if !hasEq {
		repl = s
	}
	if i := strings.Index(repl, "@"); i >= 0 {
		img["digest"] = repl[i+1:]
		repl = repl[:i]
	} else if i := strings.LastIndex(repl, ":"); i > strings.LastIndex(repl, "/") {
		img["newTag"] = repl[i+1:]
		repl = repl[:i]
	}
	if hasEq {
		img["name"] = name
		if repl != "" && repl != name {
			img["newName"] = repl
		}
	} else {
		img["name"] = repl
	}
	return img
}

// OverrideTag is the tag an Application's kustomize.images overrides set
// for image (the original name; any image when image is ""): the last
// matching entry, as it wins at render time.
func OverrideTag(overrides []string, image string) (string, bool) {
	i := OverrideFor(overrides, image)
	if i < 0 {
		return "", false
	}
	tag, ok := ParseImage(overrides[i])["newTag"].(string)
	return tag, ok
}

// OverrideFor is the index of the override that applies to image (the
// last one naming it; the last one when image is ""), -1 when none does.
func OverrideFor(overrides []string, image string) int {
	for i := len(overrides) - 1; i >= 0; i-- {
		if image == "" || ParseImage(overrides[i])["name"] == image {
			return i
		}
	}
	return -1
}

// KustomizationTag reads images[name].newTag of a parsed kustomization
// (the first image when name is "").
func KustomizationTag(k map[string]any, name string) (string, bool) {
	images, _ := k["images"].([]any)
	for _, img := range images {
		m, _ := img.(map[string]any)
		if m == nil || (name != "" && m["name"] != name) {
			continue
		}
		tag, ok := m["newTag"].(string)
		return tag, ok
	}
	return "", false
}
