package promote

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	gitsource "github.com/mlcd-dev/mlcd/internal/source"
)

// RollbackOptions name what to roll back: a model's environment, or an
// Application by name.
type RollbackOptions struct {
	Push
	Model, Env string
	App        string
	// Path rolls back the newest commit that changed anything under it
	// (an Application's source.path, for an app not defined in the repo).
	Path string
	// Reason, when set, is added to the revert's message (e.g. the failed
	// canary analysis).
	Reason string
}

// RollbackResult says which commit was reverted by which.
type RollbackResult struct {
	Reverted, Commit, Subject, Branch, PushCommand string
	Pushed                                         bool
}

const maxHistory = 500

// Rollback reverts, with `git revert`, the newest commit on the current
// branch that changed what is rolled back, and pushes the revert. A revert
// that conflicts is aborted: nothing changes and the error says why.
func Rollback(ctx context.Context, o RollbackOptions) (*RollbackResult, error) {
	repo, wt, err := openClean(o.Dir)
	if err != nil {
		return nil, err
	}
	head, err := repo.Head()
	if err != nil {
		return nil, err
	}
	match, what, err := matcher(repo, o)
	if err != nil {
		return nil, err
	}
	iter, err := repo.Log(&git.LogOptions{From: head.Hash()})
	if err != nil {
		return nil, err
	}
	var target *object.Commit
	n := 0
	err = iter.ForEach(func(c *object.Commit) error {
		if n++; n > maxHistory {
			return storer.ErrStop
		}
		if c.NumParents() != 1 {
			return nil
		}
		parent, err := c.Parent(0)
		if err != nil {
			return err
		}
		changed, err := match(parent, c)
		if err != nil {
			return err
		}
		if changed {
			target = c
			return storer.ErrStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, storer.ErrStop) {
		return nil, err
	}
	if target == nil {
		return nil, fmt.Errorf("no commit in the last %d on %s changed %s", maxHistory, head.Name().Short(), what)
	}
	root := wt.Filesystem.Root()
	args := []string{"revert", "--no-edit", target.Hash.String()}
	if o.Reason != "" {
		args = []string{"-c", "core.editor=true", "revert", "--no-commit", target.Hash.String()}
	}
	if err := gitCmd(ctx, root, args...); err != nil {
		_ = gitCmd(ctx, root, "revert", "--abort")
		return nil, fmt.Errorf("reverting %s (%s) conflicts with later commits; nothing was changed: %w", target.Hash.String()[:7], firstLine(target.Message), err)
	}
	if o.Reason != "" {
		msg := RevertMessage(firstLine(target.Message), target.Hash.String(), o.Reason)
		if err := gitCmd(ctx, root, "commit", "-q", "-m", msg); err != nil {
			_ = gitCmd(ctx, root, "revert", "--abort")
			return nil, err
		}
	}
	commit, err := o.sign(root)
	if err != nil {
		return nil, err
	}
	res := &RollbackResult{Reverted: target.Hash.String(), Commit: commit, Subject: firstLine(target.Message), Branch: head.Name().Short()}
	res.PushCommand, res.Pushed, err = o.push(ctx, root, head.Name().Short(), "the revert")
	return res, err
}

// matcher returns a predicate telling whether a commit (against its
// parent) changed what o names.
func matcher(repo *git.Repository, o RollbackOptions) (func(parent, c *object.Commit) (bool, error), string, error) {
	if o.Path != "" {
		dir := path.Clean(o.Path)
		return touches(dir), "path " + dir, nil
	}
	if o.App != "" {
		tree, _, err := TreeAt(repo, "HEAD")
		if err != nil {
			return nil, "", err
		}
		var yamls []string
		_ = tree.tree.Files().ForEach(func(f *object.File) error {
			if strings.HasSuffix(f.Name, ".yaml") || strings.HasSuffix(f.Name, ".yml") {
				yamls = append(yamls, f.Name)
			}
			return nil
		})
		apps, err := tree.applications(yamls)
		if err != nil {
			return nil, "", err
		}
		var appPath, appFile string
		for _, a := range apps {
			if a.app.Name == o.App {
				if src := a.app.SourceOf(); src != nil {
					appPath, appFile = path.Clean(src.Path), a.file
				}
			}
		}
		if appFile == "" {
			return nil, "", fmt.Errorf("no Application %s in the repository", o.App)
		}
		what := fmt.Sprintf("application %s (%s or %s)", o.App, appPath, appFile)
		return touches(appPath, appFile), what, nil
	}
	key := o.Model + "/" + o.Env
	what := fmt.Sprintf("the version of %s in %s", o.Model, o.Env)
	version := func(c *object.Commit) (string, bool, error) {
		t, err := c.Tree()
		if err != nil {
			return "", false, err
		}
		deps, err := (&Tree{tree: t}).Deployments()
		if err != nil {
			return "", false, nil // an unreadable old commit is not the one we look for
		}
		for _, d := range deps {
			if d.Key() == key {
				return d.Version, true, nil
			}
		}
		return "", false, nil
	}
	return func(parent, c *object.Commit) (bool, error) {
		after, ok, err := version(c)
		if err != nil || !ok {
			return false, err
		}
		before, _, err := version(parent)
		if err != nil {
			return false, err
		}
		return before != after, nil
	}, what, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// RevertMessage is the message of a revert commit mlcd makes (git revert's
// own shape, with the reason): RevertedBy reads the commit back from it.
func RevertMessage(subject, sha, reason string) string {
	return fmt.Sprintf("Revert %q\n\nThis reverts commit %s.\n\n%s\n", subject, sha, reason)
}

var revertRE = regexp.MustCompile(`This reverts commit ([0-9a-f]{40})`)

// RevertedBy is the commit a revert commit's message says it reverts
// (mlcd's and git revert's own); ok is false for any other message.
func RevertedBy(message string) (sha string, ok bool) {
	m := revertRE.FindStringSubmatch(message)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// touches is a matcher for commits that change a file under one of paths
// (source.TreeChanges and AnyUnder: the controller's own answer).
func touches(paths ...string) func(parent, c *object.Commit) (bool, error) {
	return func(parent, c *object.Commit) (bool, error) {
		from, err := parent.Tree()
		if err != nil {
			return false, err
		}
		to, err := c.Tree()
		if err != nil {
			return false, err
		}
		files, err := gitsource.TreeChanges(from, to)
		if err != nil {
			return false, err
		}
		return gitsource.AnyUnder(paths, files), nil
	}
}
