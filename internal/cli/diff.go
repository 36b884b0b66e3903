package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlcd-dev/mlcd/internal/prdiff"
)

func newDiffCmd() *cobra.Command {
	var o prdiff.Options
	var exitCode, markdown bool
	var output string
	var maxBytes int
	cmd := &cobra.Command{
		Use:   "diff --base REV --head REV",
		Short: "What a change does to the rendered manifests of every app it can affect (offline, for PR review)",
		Long: `diff renders, offline and without cluster credentials, every Application
the change can affect — the Applications and ApplicationSets under --path,
app-of-apps children and the apps ApplicationSets generate — at --base and
at --head of the repository in --repo, and prints, per app whose rendered
objects differ, a unified diff of those objects (Secret values masked), and
the apps added or removed. Apps whose render did not change are not listed;
apps whose sources are in another repository are named as skipped.

A head revision that fails to render an app names the app and the error and
exits 2. --exit-code exits 1 when anything differs. -o json is for tools;
--markdown writes a PR comment (one collapsed section per app, cut to
--max-bytes, GitHub's comment limit by default).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Base == "" || o.Head == "" {
				return fmt.Errorf("--base and --head are required")
			}
			res, err := prdiff.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case output == "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			case markdown:
				writeMarkdown(out, res, maxBytes)
			default:
				writeText(out, res)
			}
			switch {
			case res.Failed():
				return &ExitError{Code: 2}
			case exitCode && res.Differs():
				return errExit1
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Repo, "repo", ".", "a local clone of the deployment repository")
	cmd.Flags().StringVar(&o.Base, "base", "", "the revision before the change (e.g. origin/main's SHA)")
	cmd.Flags().StringVar(&o.Head, "head", "", "the revision after the change (e.g. the PR's head)")
	cmd.Flags().StringVar(&o.Path, "path", ".", "the directory of Application and ApplicationSet manifests")
	cmd.Flags().BoolVar(&exitCode, "exit-code", false, "exit 1 when any app's rendered objects differ")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().BoolVar(&markdown, "markdown", false, "write a PR comment in Markdown")
	cmd.Flags().IntVar(&maxBytes, "max-bytes", 65000, "with --markdown: cut the comment to this size")
	return cmd
}

func writeText(w io.Writer, res *prdiff.Result) {
	if len(res.Apps) == 0 {
		fmt.Fprintf(w, "no app's rendered manifests change between %s and %s\n", short(res.Base), short(res.Head))
	}
	for _, a := range res.Apps {
		switch a.Status {
		case prdiff.Failed:
			fmt.Fprintf(w, "! %s: does not render at %s: %s\n", a.App, short(res.Head), a.Error)
		default:
			fmt.Fprintf(w, "%s %s: %s\n%s", sigil(a.Status), a.App, a.Status, a.Diff)
		}
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(w, "  %s: skipped (its sources are in another repository)\n", s)
	}
}

func sigil(status string) string {
	switch status {
	case prdiff.Added:
		return "+"
	case prdiff.Removed:
		return "-"
	}
	return "~"
}

func writeMarkdown(w io.Writer, res *prdiff.Result, maxBytes int) {
	var b strings.Builder
	fmt.Fprintf(&b, "### mlcd: rendered manifests, %s → %s\n\n", short(res.Base), short(res.Head))
	if len(res.Apps) == 0 {
		b.WriteString("No app's rendered manifests change.\n")
	}
	var cut int
	for i, a := range res.Apps {
		var sec strings.Builder
		if a.Status == prdiff.Failed {
			fmt.Fprintf(&sec, "**%s** does not render: `%s`\n\n", a.App, strings.ReplaceAll(a.Error, "`", "'"))
		} else {
			fmt.Fprintf(&sec, "<details><summary><b>%s</b> %s</summary>\n\n```diff\n%s```\n</details>\n\n", a.App, a.Status, strings.ReplaceAll(a.Diff, "```", "'''"))
		}
		if b.Len()+sec.Len() > maxBytes-200 {
			cut = len(res.Apps) - i
			break
		}
		b.WriteString(sec.String())
	}
	if cut > 0 {
		fmt.Fprintf(&b, "… %d more app(s) not shown (the comment's size limit): run `mlcd diff` locally.\n", cut)
	}
	io.WriteString(w, b.String())
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
