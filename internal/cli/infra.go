package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/spf13/cobra"

	"github.com/mlcd-dev/mlcd/internal/infra"
	"github.com/mlcd-dev/mlcd/internal/promote"
)

// DefaultInfraDir is where the seed keeps its Terraform.
const DefaultInfraDir = "infrastructure/terraform"

func newInfraCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "infra", Short: "Check the infrastructure code kept beside the deployments"}
	cmd.AddCommand(newInfraCheckCmd())
	return cmd
}

func newInfraCheckCmd() *cobra.Command {
	var base, head, output, junit, repoDir string
	var plan bool
	cmd := &cobra.Command{
		Use:   "check [DIR]",
		Short: "Validate Terraform/OpenTofu without providers and list what a change adds, changes or removes",
		Long: `check parses every .tf file under DIR (default infrastructure/terraform,
relative to the repository root) with HashiCorp's HCL library and checks what
terraform validate checks without providers: syntax, references to undeclared
variables, locals, resources, data sources and modules, duplicate blocks, a
terraform { required_providers } block listing every provider used, and local
module sources that exist inside the repository. With --base and --head it
checks head's files and lists the resources the change adds, changes (with
each argument's old and new text) or removes; GPU and node-pool changes are
flagged for review. --plan also runs tofu (or terraform) init -backend=false
and plan when one is on PATH. Exit status 1 when there are findings.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := DefaultInfraDir
			if len(args) == 1 {
				dir = args[0]
			}
			if (base == "") != (head == "") {
				return errors.New("--base and --head go together")
			}
			rep, err := infraCheck(repoDir, dir, base, head)
			if err != nil {
				return err
			}
			if plan {
				rep.Plan = runPlan(cmd.Context(), filepath.Join(repoDir, dir))
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			case "table", "":
				rep.WriteTable(out)
			default:
				return fmt.Errorf("unknown output %q: use table or json", output)
			}
			if junit != "" {
				if err := writeFileWith(junit, rep.WriteJUnit); err != nil {
					return err
				}
			}
			if len(rep.Findings) > 0 {
				return &ExitError{Code: 1, Message: fmt.Sprintf("%d finding(s) in %s", len(rep.Findings), dir)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "base", "", "revision the change is based on (with --head: list resource changes)")
	cmd.Flags().StringVar(&head, "head", "", "revision under review (its files are checked)")
	cmd.Flags().StringVar(&repoDir, "repo", ".", "the repository checkout")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().StringVar(&junit, "junit", "", "write a JUnit XML report to this file")
	cmd.Flags().BoolVar(&plan, "plan", false, "also run tofu/terraform init -backend=false and plan (when on PATH)")
	return cmd
}

// infraCheck validates dir — in the working tree, or at head — and, with
// base and head, lists the resource changes between them.
func infraCheck(repoDir, dir, base, head string) (*infra.Report, error) {
	dir = filepath.ToSlash(filepath.Clean(dir))
	rep := &infra.Report{Dir: dir}
	if base == "" {
		root, err := repoRoot(repoDir)
		if err != nil {
			return nil, err
		}
		abs, err := filepath.Abs(filepath.Join(repoDir, dir))
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(root, abs)
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("%s is not inside the repository %s", dir, root)
		}
		if st, err := os.Stat(abs); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%s: no such directory", dir)
		}
		rep.Dir = filepath.ToSlash(rel)
		rep.Findings, err = infra.Validate(os.DirFS(root), rep.Dir)
		return rep, err
	}
	repo, err := git.PlainOpenWithOptions(repoDir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", repoDir, err)
	}
	tmp, err := os.MkdirTemp("", "mlcd-infra-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	resources := map[string]map[string]*infra.Resource{}
	for _, rev := range []string{base, head} {
		t, _, err := promote.TreeAt(repo, rev)
		if err != nil {
			return nil, err
		}
		dest := filepath.Join(tmp, fmt.Sprint(len(resources)))
		// The whole tree: local module sources may point anywhere in it.
		if err := t.Extract("", dest); err != nil {
			return nil, err
		}
		fsys := os.DirFS(dest)
		if _, err := os.Stat(filepath.Join(dest, dir)); err != nil {
			resources[rev] = map[string]*infra.Resource{} // not there at this revision
			continue
		}
		if resources[rev], err = infra.Resources(fsys, dir); err != nil {
			return nil, err
		}
		if rev == head {
			if rep.Findings, err = infra.Validate(fsys, dir); err != nil {
				return nil, err
			}
		}
	}
	rep.Changes = infra.Diff(resources[base], resources[head])
	return rep, nil
}

func repoRoot(dir string) (string, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return filepath.Abs(dir) // not a repository: dir is the root
	}
	wt, err := repo.Worktree()
	if err != nil {
		return filepath.Abs(dir)
	}
	return wt.Filesystem.Root(), nil
}

var planSummary = regexp.MustCompile(`(?m)^(Plan: .*|No changes\..*)$`)

// runPlan runs tofu (or terraform) init -backend=false and plan in dir and
// returns the plan's summary line, or why there is none.
func runPlan(ctx context.Context, dir string) string {
	bin := ""
	for _, b := range []string{"tofu", "terraform"} {
		if p, err := exec.LookPath(b); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		return "neither tofu nor terraform is on PATH: no plan (the checks above need no provider)"
	}
	name := filepath.Base(bin)
	if out, err := exec.CommandContext(ctx, bin, "init", "-backend=false", "-input=false", "-no-color").CombinedOutput(); err != nil {
		return fmt.Sprintf("%s init failed: %s", name, lastLine(out))
	}
	out, err := exec.CommandContext(ctx, bin, "plan", "-input=false", "-lock=false", "-no-color").CombinedOutput()
	if m := planSummary.Find(out); m != nil {
		return name + ": " + string(m)
	}
	if err != nil {
		return fmt.Sprintf("%s plan failed: %s", name, lastLine(out))
	}
	return name + ": " + lastLine(out)
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// writeFileWith creates path and writes it with write.
func writeFileWith(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
