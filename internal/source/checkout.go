package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Bounds of one checkout, unless Options say otherwise: a repository past
// them is refused whole (Argo CD's reposerver has the same kind of limit
// on a manifest generation's input).
const (
	DefaultMaxFiles = 100_000
	DefaultMaxBytes = 2 << 30
)

// ErrUnsafeTree is a tree that would reach outside its checkout: a
// symlink whose target leaves the repository, a path that names an
// earlier symlink or file as a directory, or two entries whose names are
// equal (or equal but for case).
var ErrUnsafeTree = errors.New("unsafe repository tree")

// ErrTooLarge is a tree past the checkout's bounds.
var ErrTooLarge = errors.New("repository too large")

// materialise writes tree under dir without ever following a symlink out
// of dir: every write goes through an os.Root (which refuses any path that
// resolves outside it), files are created exclusively, a name used twice
// or differing only in case is refused, and when all entries are written
// every symlink is resolved and refused if it leaves dir — anywhere in the
// tree, not only under an app's path. A refused tree leaves nothing.
func (c *Cache) materialise(ctx context.Context, st storer.EncodedObjectStorer, tree *object.Tree, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	kinds := map[string]filemode.FileMode{} // lower-cased path -> mode (Dir for directories)
	var links []string
	var files int
	var bytes int64
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		name, entry, err := walker.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if strings.Contains(err.Error(), "invalid path") {
				return fmt.Errorf("%w: %s", ErrUnsafeTree, err)
			}
			return err
		}
		if err := checkName(name); err != nil {
			return err
		}
		lower := strings.ToLower(name)
		if _, dup := kinds[lower]; dup {
			return fmt.Errorf("%w: %s appears twice in the tree (or differs from another entry only in case)", ErrUnsafeTree, name)
		}
		for p := path.Dir(lower); p != "."; p = path.Dir(p) {
			if m, ok := kinds[p]; ok && m != filemode.Dir {
				return fmt.Errorf("%w: %s lies under %s, which is not a directory", ErrUnsafeTree, name, path.Dir(name))
			}
		}
		switch entry.Mode {
		case filemode.Dir:
			kinds[lower] = filemode.Dir
			if err := root.MkdirAll(filepath.FromSlash(name), 0o755); err != nil {
				return unsafe(name, err)
			}
			continue
		case filemode.Submodule:
			kinds[lower] = entry.Mode
			continue
		}
		kinds[lower] = entry.Mode
		files++
		if files > c.opts.MaxFiles {
			return fmt.Errorf("%w: more than %d files (the checkout's bound)", ErrTooLarge, c.opts.MaxFiles)
		}
		blob, err := object.GetBlob(st, entry.Hash)
		if err != nil {
			return err
		}
		bytes += blob.Size
		if bytes > c.opts.MaxBytes {
			return fmt.Errorf("%w: more than %d bytes (the checkout's bound)", ErrTooLarge, c.opts.MaxBytes)
		}
		if err := writeBlob(root, name, entry.Mode, blob); err != nil {
			return unsafe(name, err)
		}
		if entry.Mode == filemode.Symlink {
			links = append(links, name)
		}
	}
	// Every symlink must resolve inside the checkout: links chain through
	// one another, so they are checked on the finished tree.
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	for _, l := range links {
		p := filepath.Join(dir, filepath.FromSlash(l))
		target, _ := os.Readlink(p)
		if filepath.IsAbs(target) {
			return fmt.Errorf("%w: symlink %s points outside the repository (to an absolute path)", ErrUnsafeTree, l)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			// A dangling link must still stay inside lexically.
			if !Within(dir, filepath.Join(filepath.Dir(p), target)) {
				return fmt.Errorf("%w: symlink %s points outside the repository", ErrUnsafeTree, l)
			}
			continue
		}
		if !Within(realDir, real) {
			return fmt.Errorf("%w: symlink %s points outside the repository", ErrUnsafeTree, l)
		}
	}
	return nil
}

func writeBlob(root *os.Root, name string, mode filemode.FileMode, blob *object.Blob) error {
	rel := filepath.FromSlash(name)
	if d := filepath.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	r, err := blob.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	if mode == filemode.Symlink {
		target, err := io.ReadAll(io.LimitReader(r, 4096))
		if err != nil {
			return err
		}
		return root.Symlink(string(target), rel)
	}
	perm := fs.FileMode(0o644)
	if mode == filemode.Executable {
		perm = 0o755
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkName refuses entry names Git itself refuses to check out.
func checkName(name string) error {
	for _, part := range strings.Split(name, "/") {
		switch strings.ToLower(part) {
		case "", ".", "..", ".git":
			return fmt.Errorf("%w: entry %q has a path component Git refuses (%q)", ErrUnsafeTree, name, part)
		}
	}
	return nil
}

func unsafe(name string, err error) error {
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s is written twice", ErrUnsafeTree, name)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
		return fmt.Errorf("%w: %s would be written outside the checkout through a symlink", ErrUnsafeTree, name)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// CheckoutCommit writes the tree of commit sha of repo (any go-git
// repository: a user's clone, say) into dest, with the same refusals and
// the default bounds as a Cache's checkout.
func CheckoutCommit(ctx context.Context, repo *git.Repository, sha, dest string) error {
	commit, err := repo.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		return fmt.Errorf("commit %s: %w", sha, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	c := NewCache(Options{Dir: dest})
	return c.materialise(ctx, repo.Storer, tree, dest)
}
