package source

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Join returns root/rel, refusing absolute paths, ".." that climbs out of
// root, and symlinks whose target resolves outside root.
func Join(root, rel string) (string, error) {
	if filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("path %s: absolute paths are not allowed", rel)
	}
	p := filepath.Join(root, filepath.FromSlash(rel))
	if !Within(root, p) {
		return "", fmt.Errorf("path %s leaves the repository", rel)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if os.IsNotExist(err) {
			return p, err
		}
		return "", fmt.Errorf("path %s: %w", rel, err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	if !Within(realRoot, real) {
		return "", fmt.Errorf("path %s is a symlink that leaves the repository", rel)
	}
	return p, nil
}

// Within reports whether p is root or lies under it (both cleaned, no
// symlinks resolved).
func Within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// CheckConfined walks dir and refuses any symlink under it whose target
// resolves outside root, naming the link relative to root.
func CheckConfined(root, dir string) error {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return fmt.Errorf("symlink %s: target does not resolve inside the repository", rel)
		}
		if !Within(realRoot, real) {
			return fmt.Errorf("symlink %s points outside the repository", rel)
		}
		return nil
	})
}
