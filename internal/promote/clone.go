package promote

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// InClone runs fn in a temporary clone of url at branch ("" or HEAD: the
// default branch), committing as mlcd; fn pushes what it commits.
func InClone(ctx context.Context, url, branch string, fn func(dir string) error) error {
	dir, err := os.MkdirTemp("", "mlcd-git-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args := []string{"clone", "--quiet", "--no-tags"}
	if branch != "" && branch != "HEAD" {
		args = append(args, "--branch", branch)
	}
	args = append(args, "--", url, dir)
	for _, a := range [][]string{args, {"-C", dir, "config", "user.name", "mlcd"}, {"-C", dir, "config", "user.email", "mlcd@localhost"}} {
		cmd := exec.CommandContext(ctx, "git", a...)
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %s", a[0], strings.TrimSpace(string(out)))
		}
	}
	return fn(dir)
}
