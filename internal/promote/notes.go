package promote

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// NotesRef is where mlcd records what runs where: `git log --notes=mlcd`
// (or any Git host that shows notes) tells, per commit, which apps
// deployed it, in which environment, at which model version and health.
const NotesRef = "refs/notes/mlcd"

// Note is one app's line in a commit's note.
type Note struct {
	App, Environment, Model, Version, Sync, Health, Rollout string
	At                                                      time.Time
}

func (n Note) line() string {
	parts := []string{"app: " + n.App}
	for _, kv := range [][2]string{{"environment", n.Environment}, {"model", n.Model}, {"version", n.Version}, {"sync", n.Sync}, {"health", n.Health}, {"rollout", n.Rollout}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+": "+kv[1])
		}
	}
	return strings.Join(parts, " | ") + " | at: " + n.At.UTC().Format(time.RFC3339)
}

// AddNote records n on commit sha under NotesRef in the clone at dir and
// pushes it to origin: the app's earlier line on that commit is replaced,
// other apps' lines are kept, and a push that lost a race (another
// controller or app wrote the note first) is retried on the remote's note.
func AddNote(ctx context.Context, dir, sha string, n Note) error {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		// The remote's notes, if any (a missing ref is no error).
		if _, err := gitOut(ctx, dir, "fetch", "--quiet", "origin", "+"+NotesRef+":"+NotesRef); err != nil && !strings.Contains(err.Error(), "couldn't find remote ref") {
			return err
		}
		existing, _ := gitOut(ctx, dir, "notes", "--ref="+NotesRef, "show", sha)
		var lines []string
		prefix := "app: " + n.App + " |"
		for _, l := range strings.Split(existing, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, prefix) {
				lines = append(lines, l)
			}
		}
		lines = append(lines, n.line())
		if _, err := gitOut(ctx, dir, "notes", "--ref="+NotesRef, "add", "-f", "-m", strings.Join(lines, "\n"), sha); err != nil {
			return err
		}
		_, err := gitOut(ctx, dir, "push", "--quiet", "origin", NotesRef+":"+NotesRef)
		if err == nil {
			return nil
		}
		last = err
		if !strings.Contains(err.Error(), "rejected") && !strings.Contains(err.Error(), "fetch first") && !strings.Contains(err.Error(), "non-fast-forward") {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(100*(attempt+1)) * time.Millisecond):
		}
	}
	return fmt.Errorf("note on %s not pushed after 5 attempts: %w", sha, last)
}

// gitOut runs git in dir and returns its trimmed standard output.
func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", errors.New("git " + args[0] + ": " + strings.TrimSpace(stderr.String()+" "+err.Error()))
	}
	return strings.TrimSpace(string(out)), nil
}
