package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlcd-dev/mlcd/internal/registry"
)

// registryFlag adds --registry to cmd; the client honours MLflow's
// environment (MLFLOW_TRACKING_URI, _USERNAME/_PASSWORD, _TOKEN).
type registryFlag struct{ url string }

func (f *registryFlag) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.url, "registry", "", "model registry URL (default $MLFLOW_TRACKING_URI)")
}

func (f *registryFlag) client() (*registry.Client, error) {
	return registry.NewClient(registry.OptionsFromEnv(f.url))
}

func newModelCmd() *cobra.Command {
	var reg registryFlag
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Work with models in the registry",
	}
	reg.add(cmd)
	cmd.AddCommand(newModelRegisterCmd(&reg), newModelListCmd(&reg), newModelGetCmd(&reg), newModelAliasCmd(&reg),
		newModelCheckCmd(&reg), newModelPromoteCmd(), newModelHistoryCmd(&reg), newModelApproveCmd(),
		newRollbackCmd("rollback MODEL --env ENV", "Revert the newest commit that changed the model's version in ENV, with git revert", true))
	return cmd
}

func parseKV(pairs []string, what string) ([][2]string, error) {
	var out [][2]string
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s wants key=value, got %q", what, p)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func newModelRegisterCmd(reg *registryFlag) *cobra.Command {
	var source, runID, experiment, description string
	var tags, metrics []string
	cmd := &cobra.Command{
		Use:   "register NAME --source URI [--run-id ID] [--tag k=v ...] [--metric k=v ...]",
		Short: "Register a new model version (creating the model if needed)",
		Long: `register creates a version of model NAME. With --metric it first creates a
run in --experiment holding those metrics and links the version to it, so
metric gates can read them. --tag version=v2.3.2 names the version the way Git
will refer to it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if source == "" {
				return fmt.Errorf("--source is required")
			}
			tagKV, err := parseKV(tags, "tag")
			if err != nil {
				return err
			}
			metricKV, err := parseKV(metrics, "metric")
			if err != nil {
				return err
			}
			var ms []registry.Metric
			now := time.Now().UnixMilli()
			for _, kv := range metricKV {
				v, err := strconv.ParseFloat(kv[1], 64)
				if err != nil {
					return fmt.Errorf("--metric %s=%s: not a number", kv[0], kv[1])
				}
				ms = append(ms, registry.Metric{Key: kv[0], Value: v, Timestamp: now})
			}
			if len(ms) > 0 && runID != "" {
				return fmt.Errorf("--metric creates a run; it cannot be combined with --run-id")
			}
			c, err := reg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if _, err := c.GetRegisteredModel(ctx, name); err != nil {
				if !isNotFound(err) {
					return err
				}
				if _, err := c.CreateRegisteredModel(ctx, name, "", nil); err != nil && !isAlreadyExists(err) {
					return err
				}
			}
			if len(ms) > 0 {
				if runID, err = metricsRun(ctx, c, experiment, name, ms); err != nil {
					return err
				}
			}
			vtags := make([]registry.Tag, 0, len(tagKV))
			for _, kv := range tagKV {
				vtags = append(vtags, registry.Tag{Key: kv[0], Value: kv[1]})
			}
			v, err := c.CreateModelVersion(ctx, name, registry.CreateVersionOptions{Source: source, RunID: runID, Tags: vtags, Description: description})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "registered %s version %s (%s)", v.Name, v.Version, v.Status)
			if runID != "" {
				fmt.Fprintf(cmd.OutOrStdout(), ", run %s", runID)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "model artifact URI (required)")
	cmd.Flags().StringVar(&runID, "run-id", "", "link the version to an existing run")
	cmd.Flags().StringVar(&experiment, "experiment", "mlcd", "experiment for the run --metric creates")
	cmd.Flags().StringVar(&description, "description", "", "version description")
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "version tag key=value, repeatable")
	cmd.Flags().StringArrayVar(&metrics, "metric", nil, "offline metric key=value, repeatable")
	return cmd
}

// metricsRun creates a finished run holding the metrics and returns its id.
func metricsRun(ctx context.Context, c *registry.Client, experiment, model string, ms []registry.Metric) (string, error) {
	var expID string
	exp, err := c.GetExperimentByName(ctx, experiment)
	switch {
	case err == nil:
		expID = exp.ExperimentID
	case isNotFound(err):
		if expID, err = c.CreateExperiment(ctx, experiment); err != nil {
			if !isAlreadyExists(err) {
				return "", err
			}
			if exp, err = c.GetExperimentByName(ctx, experiment); err != nil {
				return "", err
			}
			expID = exp.ExperimentID
		}
	default:
		return "", err
	}
	run, err := c.CreateRun(ctx, expID, model+"-offline-eval", nil)
	if err != nil {
		return "", err
	}
	if err := c.LogBatch(ctx, run.Info.RunID, ms, nil, nil); err != nil {
		return "", err
	}
	if _, err := c.UpdateRun(ctx, run.Info.RunID, "FINISHED"); err != nil {
		return "", err
	}
	return run.Info.RunID, nil
}

func newModelListCmd(reg *registryFlag) *cobra.Command {
	var filter string
	return &cobra.Command{
		Use:   "list",
		Short: "List registered models with their aliases and latest version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := reg.client()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tLATEST\tALIASES\tDESCRIPTION")
			opts := registry.SearchOptions{Filter: filter, MaxResults: 1000}
			for {
				models, next, err := c.SearchRegisteredModels(cmd.Context(), opts)
				if err != nil {
					return err
				}
				for _, m := range models {
					latest := "-"
					for _, v := range m.LatestVersions {
						if n, _ := strconv.Atoi(v.Version); latest == "-" || n > atoi(latest) {
							latest = v.Version
						}
					}
					var aliases []string
					for _, a := range m.Aliases {
						aliases = append(aliases, a.Alias+"="+a.Version)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", m.Name, latest, orDash(strings.Join(aliases, ",")), orDash(m.Description))
				}
				if next == "" {
					break
				}
				opts.PageToken = next
			}
			return w.Flush()
		},
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newModelGetCmd(reg *registryFlag) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME [VERSION]",
		Short: "Show a model's versions, or one version with its metrics",
		Long:  "VERSION is a registry version number (3) or a version tag as written in Git (v2.3.2).",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := reg.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			if len(args) == 2 {
				v, err := registry.Resolve(ctx, c, args[0], args[1])
				if err != nil {
					return err
				}
				metrics, err := c.VersionMetrics(ctx, v)
				if err != nil {
					return err
				}
				printVersion(out, v, metrics)
				return nil
			}
			if _, err := c.GetRegisteredModel(ctx, args[0]); err != nil {
				return err
			}
			vs, err := c.AllModelVersions(ctx, registry.SearchOptions{Filter: fmt.Sprintf("name = '%s'", strings.ReplaceAll(args[0], "'", ""))})
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tTAG\tSTATUS\tSTAGE\tALIASES\tRUN\tSOURCE")
			for _, v := range vs {
				tag, _ := v.Tag(registry.VersionTag)
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Version, orDash(tag), v.Status, v.CurrentStage, orDash(strings.Join(v.Aliases, ",")), orDash(v.RunID), v.Source)
			}
			return w.Flush()
		},
	}
}

func printVersion(w io.Writer, v *registry.ModelVersion, metrics map[string]float64) {
	fmt.Fprintf(w, "name:     %s\nversion:  %s\nstatus:   %s\nstage:    %s\nsource:   %s\n", v.Name, v.Version, v.Status, v.CurrentStage, v.Source)
	if v.RunID != "" {
		fmt.Fprintf(w, "run:      %s\n", v.RunID)
	}
	if len(v.Aliases) > 0 {
		fmt.Fprintf(w, "aliases:  %s\n", strings.Join(v.Aliases, ", "))
	}
	for _, t := range v.Tags {
		fmt.Fprintf(w, "tag:      %s=%s\n", t.Key, t.Value)
	}
	keys := make([]string, 0, len(metrics))
	for k := range metrics {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "metric:   %s=%g\n", k, metrics[k])
	}
}

func newModelAliasCmd(reg *registryFlag) *cobra.Command {
	return &cobra.Command{
		Use:   "alias NAME ALIAS VERSION",
		Short: "Point an alias of a model at a version (number or Git version tag)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := reg.client()
			if err != nil {
				return err
			}
			v, err := registry.Resolve(cmd.Context(), c, args[0], args[2])
			if err != nil {
				return err
			}
			if err := c.SetAlias(cmd.Context(), args[0], args[1], v.Version); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s@%s -> version %s\n", args[0], args[1], v.Version)
			return nil
		},
	}
}
