package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzJoin: whatever the relative path, Join never returns a path outside
// the root, also through symlinks (the repository holds one pointing out
// and one pointing in).
func FuzzJoin(f *testing.F) {
	root := f.TempDir()
	repo := filepath.Join(root, "repo")
	os.MkdirAll(filepath.Join(repo, "models/fd"), 0o755)
	os.WriteFile(filepath.Join(repo, "models/fd/values.yaml"), []byte("x: 1"), 0o644)
	os.Symlink("/etc", filepath.Join(repo, "out"))
	os.Symlink("models", filepath.Join(repo, "in"))
	os.Symlink("loop", filepath.Join(repo, "loop"))
	for _, s := range []string{"models/fd/values.yaml", "../../../etc/passwd", "/etc/passwd", "out/passwd", "in/fd/values.yaml", "loop/x", "models/../../repo/models", "a/./b/../../..", "%2e%2e/x", "models\\..\\..", ""} {
		f.Add(s)
	}
	realRepo, _ := filepath.EvalSymlinks(repo)
	f.Fuzz(func(t *testing.T, rel string) {
		p, err := Join(repo, rel)
		if err != nil {
			return
		}
		if !Within(repo, p) {
			t.Fatalf("Join(%q) = %q, outside the repository", rel, p)
		}
		if real, err := filepath.EvalSymlinks(p); err == nil && !Within(realRepo, real) {
			t.Fatalf("Join(%q) = %q resolves to %q, outside the repository", rel, p, real)
		}
	})
}

// FuzzChartVersion: the version picker never panics, and what it picks
// is in the index and, for an exact version, is that version.
func FuzzChartVersion(f *testing.F) {
	idx := &chartIndexFile{Entries: map[string][]chartVersion{"m": {{Version: "0.1.0"}, {Version: "0.1.3"}, {Version: "1.0.0-rc.1"}, {Version: "2.0.0"}, {Version: "not-semver"}}}}
	for _, s := range []string{"", "~0.1.0", "^1", ">=0.1.0 <2.0.0", "0.1.3", "1.0.0-rc.1", "*", "not-semver", ">= x", "||", "v2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, constraint string) {
		cv, err := idx.get("m", constraint)
		if err != nil {
			return
		}
		found := false
		for _, v := range idx.Entries["m"] {
			found = found || v.Version == cv.Version
		}
		if !found {
			t.Fatalf("get(%q) = %q, not in the index", constraint, cv.Version)
		}
		if strings.TrimSpace(constraint) == cv.Version {
			return
		}
	})
}
