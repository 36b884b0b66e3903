package render

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/internal/manifest"
)

// directory reads *.yaml, *.yml and *.json files of dir (recursively when
// asked), honouring include/exclude globs such as "*.yaml" or
// "{a.yaml,b.yaml}".
func directory(in Input, dir string) ([]*unstructured.Unstructured, error) {
	opts := in.Source.Directory
	recurse := opts != nil && opts.Recurse
	var out []*unstructured.Unstructured
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && (!recurse || d.Name() == ".git") {
				return filepath.SkipDir
			}
			return nil
		}
		ext := strings.ToLower(filepath.Ext(p))
		if ext != ".yaml" && ext != ".yml" && ext != ".json" {
			return nil
		}
		r := rel(dir, p)
		if opts != nil && opts.Include != "" && !globAny(opts.Include, r) {
			return nil
		}
		if opts != nil && opts.Exclude != "" && globAny(opts.Exclude, r) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", rel(in.Root, p), err)
		}
		objs, err := manifest.Parse(rel(in.Root, p), data)
		if err != nil {
			return err
		}
		out = append(out, objs...)
		return nil
	})
	return out, err
}

func globAny(patterns, name string) bool {
	patterns = strings.TrimSuffix(strings.TrimPrefix(patterns, "{"), "}")
	for _, pat := range strings.Split(patterns, ",") {
		pat = strings.TrimSpace(pat)
		if ok, _ := filepath.Match(pat, name); ok {
			return true
		}
		if ok, _ := filepath.Match(pat, filepath.Base(name)); ok {
			return true
		}
	}
	return false
}
