package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/server"
)

// apiFlags say which API server the app commands talk to: --server and
// --token, else MLCD_SERVER and MLCD_TOKEN, else the config `mlcd up`
// saved (~/.config/mlcd/config), else http://127.0.0.1:8080.
type apiFlags struct {
	server, token, output string
}

func (f *apiFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.server, "server", "", "mlcd API URL (default $MLCD_SERVER, the saved config, http://127.0.0.1:8080)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "API token (default $MLCD_TOKEN or the saved config)")
	cmd.PersistentFlags().StringVarP(&f.output, "output", "o", "table", "output format: table, wide, json, yaml or name")
}

// cliConfig is what `mlcd up` saves for the CLI.
type cliConfig struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

func configPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "mlcd", "config"), nil
}

// saveCLIConfig writes the server URL and token for the CLI (mode 0600).
func saveCLIConfig(serverURL, token string) (string, error) {
	path, err := configPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	data, _ := yaml.Marshal(cliConfig{Server: serverURL, Token: token})
	return path, os.WriteFile(path, data, 0o600)
}

func (f *apiFlags) client() (*server.Client, error) {
	var saved cliConfig
	if path, err := configPath(); err == nil {
		if data, err := os.ReadFile(path); err == nil {
			_ = yaml.Unmarshal(data, &saved)
		}
	}
	first := func(vs ...string) string {
		for _, v := range vs {
			if v != "" {
				return v
			}
		}
		return ""
	}
	base := first(f.server, os.Getenv("MLCD_SERVER"), saved.Server, "http://127.0.0.1:8080")
	token := first(f.token, os.Getenv("MLCD_TOKEN"), saved.Token)
	switch f.output {
	case "table", "wide", "json", "yaml", "name":
	default:
		return nil, fmt.Errorf("-o %s: use table, wide, json, yaml or name", f.output)
	}
	return server.NewClient(base, token), nil
}

// print writes v as JSON or YAML when -o asks for it; it reports whether
// it did (else the caller prints a table).
func (f *apiFlags) print(w io.Writer, v any) (bool, error) {
	switch f.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case "yaml":
		data, err := yaml.Marshal(v)
		if err == nil {
			_, err = w.Write(data)
		}
		return true, err
	}
	return false, nil
}

func newAppCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{Use: "app", Short: "Work with Applications (through the mlcd API)"}
	f.add(cmd)
	cmd.AddCommand(
		newAppListCmd(&f), newAppGetCmd(&f), newAppDiffCmd(&f), newAppSyncCmd(&f), newAppRefreshCmd(&f),
		newAppHistoryCmd(&f), newAppWaitCmd(&f), newAppDeleteCmd(&f),
		newAppRollbackCmd(&f),
	)
	return cmd
}

// appName is "name" for apps of the default control-plane namespace,
// else "namespace/name".
func appName(a *v1alpha1.Application) string {
	if a.Namespace == v1alpha1.DefaultControlPlaneNamespace {
		return a.Name
	}
	return a.Namespace + "/" + a.Name
}

func newAppListCmd(f *apiFlags) *cobra.Command {
	var project, search string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List Applications with sync, health and model version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			apps, err := c.ListApps(cmd.Context(), project, search)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if ok, err := f.print(out, apps); ok {
				return err
			}
			if f.output == "name" {
				for i := range apps {
					fmt.Fprintln(out, appName(&apps[i]))
				}
				return nil
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			header := "NAME\tPROJECT\tSYNC STATUS\tHEALTH STATUS\tMODEL\tENV\tVERSION"
			if f.output == "wide" {
				header += "\tREVISION\tREPO\tPATH\tDESTINATION"
			}
			fmt.Fprintln(w, header)
			for i := range apps {
				a := &apps[i]
				line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", appName(a), a.Spec.Project, dash(a.Status.Sync.Status), dash(a.Status.Health.Status),
					dash(a.Annotations[v1alpha1.AppAnnotationModel]), dash(a.Annotations[v1alpha1.AppAnnotationEnvironment]), dash(a.Annotations[v1alpha1.AppAnnotationVersion]))
				if f.output == "wide" {
					src := a.SourceOf()
					repo, path := "", ""
					if src != nil {
						repo, path = src.RepoURL, src.Path
					}
					line += fmt.Sprintf("\t%s\t%s\t%s\t%s", dash(v1alpha1.ShortSHA(a.Status.Sync.Revision)), repo, path, a.Spec.Destination.Namespace)
				}
				fmt.Fprintln(w, line)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&project, "project", "", "only apps of this AppProject")
	cmd.Flags().StringVar(&search, "search", "", "only apps whose name or model contains this")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newAppGetCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get APP",
		Short: "Show an Application: status, model, resources, conditions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			a, err := c.GetApp(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if ok, err := f.print(out, a); ok {
				return err
			}
			if f.output == "name" {
				fmt.Fprintln(out, appName(a))
				return nil
			}
			src := a.SourceOf()
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "Name:\t%s/%s\n", a.Namespace, a.Name)
			fmt.Fprintf(w, "Project:\t%s\n", a.Spec.Project)
			if src != nil {
				fmt.Fprintf(w, "Source:\t%s (path %s, revision %s)\n", src.RepoURL, src.Path, dash(src.TargetRevision))
			}
			fmt.Fprintf(w, "Destination:\t%s %s\n", a.Spec.Destination.Server, a.Spec.Destination.Namespace)
			fmt.Fprintf(w, "Sync Status:\t%s at %s\n", dash(a.Status.Sync.Status), dash(v1alpha1.ShortSHA(a.Status.Sync.Revision)))
			fmt.Fprintf(w, "Health Status:\t%s %s\n", dash(a.Status.Health.Status), a.Status.Health.Message)
			if m := a.Annotations[v1alpha1.AppAnnotationModel]; m != "" {
				fmt.Fprintf(w, "Model:\t%s %s in %s\n", m, a.Annotations[v1alpha1.AppAnnotationVersion], a.Annotations[v1alpha1.AppAnnotationEnvironment])
			}
			if op := a.Status.OperationState; op != nil {
				fmt.Fprintf(w, "Last Sync:\t%s: %s\n", op.Phase, op.Message)
			}
			for _, c := range a.Status.Conditions {
				fmt.Fprintf(w, "Condition:\t%s: %s\n", c.Type, c.Message)
			}
			w.Flush()
			fmt.Fprintln(out)
			w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "KIND\tNAMESPACE\tNAME\tSTATUS\tHEALTH\tMESSAGE")
			for _, r := range a.Status.Resources {
				h, msg := "-", ""
				if r.Health != nil {
					h, msg = r.Health.Status, r.Health.Message
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Kind, dash(r.Namespace), r.Name, r.Status, h, msg)
			}
			return w.Flush()
		},
	}
}

func newAppDiffCmd(f *apiFlags) *cobra.Command {
	var exitCode bool
	cmd := &cobra.Command{
		Use:   "diff APP",
		Short: "Show what a sync would change (a server-side dry run, Secret data masked)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			d, err := c.Diff(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if ok, err := f.print(out, d); ok {
				if err == nil && exitCode && !d.InSync {
					return errExit1
				}
				return err
			}
			for _, it := range d.Items {
				fmt.Fprintf(out, "===== %s %s/%s (%s) =====\n%s\n", it.Kind, dash(it.Namespace), it.Name, it.Action, it.Diff)
			}
			if d.InSync {
				fmt.Fprintln(out, "in sync: a sync would change nothing")
			} else if exitCode {
				return errExit1
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&exitCode, "exit-code", false, "exit 1 when a sync would change something")
	return cmd
}

// errExit1 ends the command with status 1 and no message (diff --exit-code).
var errExit1 = &ExitError{Code: 1}

// ExitError ends mlcd with Code; Message is printed when set.
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string { return e.Message }

func newAppSyncCmd(f *apiFlags) *cobra.Command {
	var prune, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "sync APP",
		Short: "Sync an Application now (sets Argo CD's operation field; the controller runs it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			a, err := c.Sync(cmd.Context(), args[0], prune)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sync of %s requested\n", args[0])
			if !wait {
				return nil
			}
			return waitFor(cmd.Context(), cmd.OutOrStdout(), c, args[0], waitOptions{sync: true, operation: true, after: a.Status.OperationState, timeout: timeout})
		},
	}
	cmd.Flags().BoolVar(&prune, "prune", false, "also prune objects Git no longer holds")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the sync ran and the app is Synced")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

func newAppRefreshCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh APP",
		Short: "Fetch the app's repository now instead of at the next poll",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if _, err := c.Refresh(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "refresh of %s requested\n", args[0])
			return nil
		},
	}
}

func newAppHistoryCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "history APP",
		Short: "The app's sync history: revision, when, source",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			a, err := c.GetApp(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if ok, err := f.print(out, a.Status.History); ok {
				return err
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tDEPLOYED AT\tREVISION\tPATH")
			for i := len(a.Status.History) - 1; i >= 0; i-- {
				h := a.Status.History[i]
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", h.ID, h.DeployedAt.UTC().Format(time.RFC3339), v1alpha1.ShortSHA(h.Revision), h.Source.Path)
			}
			return w.Flush()
		},
	}
}

func newAppDeleteCmd(f *apiFlags) *cobra.Command {
	var cascade bool
	cmd := &cobra.Command{
		Use:   "delete APP",
		Short: "Delete an Application (and, by default, the resources it deployed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), args[0], cascade); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleting %s (cascade=%v)\n", args[0], cascade)
			return nil
		},
	}
	cmd.Flags().BoolVar(&cascade, "cascade", true, "delete the app's resources too (through the resources finalizer)")
	return cmd
}

// newAppRollbackCmd reverts through the API (the server clones, reverts
// and pushes), or, with --repo, in a local work tree.
func newAppRollbackCmd(f *apiFlags) *cobra.Command {
	local := newRollbackCmd("rollback APP", "", false)
	var reason string
	cmd := &cobra.Command{
		Use:   "rollback APP",
		Short: "Revert, in Git, the newest commit that changed what the app deploys (its model version, else its path); the sync then applies the revert",
		Long: `rollback makes a git revert commit on the app's tracked branch: of the
newest commit that changed the app's model version when a ModelPolicy
governs it, else of the newest commit under its source path. Through the API
(default) the server clones, reverts with --reason in the message, pushes
and refreshes the app. With --repo DIR it reverts in that local checkout
instead and pushes from there (--no-push to only commit).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("repo") {
				return local.RunE(cmd, args)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			res, err := c.Rollback(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			if ok, err := f.print(cmd.OutOrStdout(), res); ok || err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reverted %s (%s) with %s on %s; the controller syncs it now\n", v1alpha1.ShortSHA(res.Reverted), res.Subject, v1alpha1.ShortSHA(res.Commit), res.Branch)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, added to the revert's commit message")
	cmd.Flags().AddFlagSet(local.Flags())
	return cmd
}
