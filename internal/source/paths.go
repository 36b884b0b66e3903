package source

import (
	"path"
	"path/filepath"
	"strings"
)

// RepoPath is an app's source path as a slash-separated path relative to
// the repository root ("." for the root itself).
func RepoPath(p string) string {
	if p = path.Clean("/" + filepath.ToSlash(p))[1:]; p == "" {
		return "."
	}
	return p
}

// GeneratePaths resolves a manifest-generate-paths list (";"-separated,
// each relative to the app's source path base, or absolute from the
// repository root) to paths relative to the root; "." is the root.
func GeneratePaths(base, list string) []string {
	var out []string
	for _, p := range strings.Split(list, ";") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if strings.HasPrefix(p, "/") {
			out = append(out, RepoPath(p))
		} else {
			out = append(out, path.Join(RepoPath(base), p))
		}
	}
	return out
}

// AnyUnder reports whether one of the files (paths a commit changed)
// is one of dirs or lies under it; "." holds everything.
func AnyUnder(dirs, files []string) bool {
	for _, d := range dirs {
		for _, f := range files {
			if d == "." || f == d || strings.HasPrefix(path.Clean(f), d+"/") {
				return true
			}
		}
	}
	return false
}
