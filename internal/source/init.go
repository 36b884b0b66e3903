package source

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// InitFromFS creates a Git repository at dir holding the files of fsys
// (under root), with every occurrence of each replace key substituted, in
// one commit on branch main. An existing repository at dir is left as it
// is, so work committed there survives restarts. It returns the repo's
// file:// URL.
func InitFromFS(dir string, fsys fs.FS, root string, replace map[string]string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	url := "file://" + abs
	if _, err := git.PlainOpen(abs); err == nil {
		return url, nil
	}
	repo, err := git.PlainInitWithOptions(abs, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.Main}})
	if err != nil {
		return "", fmt.Errorf("init repository %s: %w", abs, err)
	}
	// mlcd itself pushes here (rollbacks, reverts of failed rollouts,
	// promotions): a push to the checked-out branch updates the work tree.
	cfg, err := repo.Config()
	if err != nil {
		return "", err
	}
	cfg.Raw.Section("receive").SetOption("denyCurrentBranch", "updateInstead")
	if err := repo.SetConfig(cfg); err != nil {
		return "", err
	}
	if err := CopyFS(fsys, root, abs, replace); err != nil {
		return "", err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return "", err
	}
	sig := &object.Signature{Name: "mlcd", Email: "mlcd@localhost", When: time.Now()}
	if _, err := wt.Commit("Example model deployments", &git.CommitOptions{Author: sig, Committer: sig}); err != nil {
		return "", err
	}
	return url, nil
}

// CopyFS writes the files under root of fsys to dir, with every
// occurrence of each replace key substituted.
func CopyFS(fsys fs.FS, root, dir string, replace map[string]string) error {
	return fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		text := string(data)
		for from, to := range replace {
			text = strings.ReplaceAll(text, from, to)
		}
		target := filepath.Join(dir, strings.TrimPrefix(strings.TrimPrefix(p, root), "/"))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, []byte(text), 0o644)
	})
}
