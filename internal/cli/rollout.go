package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

func newRolloutCmd() *cobra.Command {
	f := &apiFlags{}
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Canary rollouts of model versions: status, promote, abort, retry",
	}
	f.add(cmd)
	cmd.AddCommand(newRolloutStatusCmd(f))
	for _, a := range []struct{ name, short string }{
		{"promote", "Advance an indefinite pause or an inconclusive analysis"},
		{"abort", "Abort the rollout at its current step: the stable version back at full scale, the canary removed"},
		{"retry", "Restart an aborted rollout from its first step without a new commit"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   a.name + " APP",
			Short: a.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := f.client()
				if err != nil {
					return err
				}
				mr, err := c.RolloutAction(cmd.Context(), args[0], a.name)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s of %s's rollout (%s → %s) requested\n", a.name, args[0], mr.Spec.StableVersion, mr.Spec.CanaryVersion)
				return nil
			},
		})
	}
	return cmd
}

func newRolloutStatusCmd(f *apiFlags) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "status APP",
		Short: "Step, weights, ready pods per side and every analysis measurement of the app's rollout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			for {
				mr, err := c.Rollout(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if ok, err := f.print(cmd.OutOrStdout(), mr); ok || err != nil {
					return err
				}
				writeRollout(cmd.OutOrStdout(), mr)
				if !watch || (mr.Status.Phase != "Progressing" && mr.Status.Phase != "Paused") {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(2 * time.Second):
				}
				fmt.Fprintln(cmd.OutOrStdout())
			}
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print again every 2s until the rollout ends")
	return cmd
}

// writeRollout prints a ModelRollout for people.
func writeRollout(w io.Writer, mr *v1alpha1.ModelRollout) {
	s := mr.Status
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Rollout:\t%s %s: %s → %s (revision %s)\n", mr.Spec.Model, mr.Spec.Environment, mr.Spec.StableVersion, mr.Spec.CanaryVersion, v1alpha1.ShortSHA(mr.Spec.Revision))
	phase := s.Phase
	if s.PauseReason != "" {
		phase += " (" + s.PauseReason + ")"
	}
	steps := mr.Spec.Strategy.Steps
	fmt.Fprintf(tw, "Phase:\t%s, step %d of %d\n", phase, min(s.CurrentStepIndex+1, len(steps)), len(steps))
	fmt.Fprintf(tw, "Weight:\t%d%%\tcanary %d/%d ready\tstable %d/%d ready\n", s.Weight, s.CanaryReady, s.Canary, s.StableReady, s.Stable)
	if s.Message != "" {
		fmt.Fprintf(tw, "Message:\t%s\n", s.Message)
	}
	if s.WatchUntil != nil {
		fmt.Fprintf(tw, "Watch:\tanalysis until %s\n", s.WatchUntil.Format(time.RFC3339))
	}
	if s.RevertCommit != "" {
		fmt.Fprintf(tw, "Reverted:\tby commit %s\n", v1alpha1.ShortSHA(s.RevertCommit))
	}
	if s.RevertError != "" {
		fmt.Fprintf(tw, "Revert failed:\t%s\n", s.RevertError)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "Steps:")
	for i, st := range steps {
		mark := "  "
		switch {
		case i < s.CurrentStepIndex:
			mark = "✔ "
		case i == s.CurrentStepIndex && (s.Phase == "Progressing" || s.Phase == "Paused"):
			mark = "▶ "
		case i == s.CurrentStepIndex && s.Phase == "Degraded":
			mark = "✘ "
		}
		fmt.Fprintf(w, "  %s%d  %s\n", mark, i, describeStep(st))
	}
	for _, ar := range s.Analysis {
		fmt.Fprintf(w, "Analysis %s: %s", ar.Name, ar.Phase)
		if ar.Message != "" {
			fmt.Fprintf(w, " (%s)", ar.Message)
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, m := range ar.Metrics {
			fmt.Fprintf(tw, "  %s\t%s\t%d measured: %d successful, %d failed, %d inconclusive, %d errors\n", m.Name, m.Phase, m.Count, m.Successful, m.Failed, m.Inconclusive, m.Error)
			for _, ms := range m.Measurements {
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", ms.StartedAt.Format(time.TimeOnly), ms.Phase, ms.Value, ms.Message)
			}
		}
		_ = tw.Flush()
	}
}

func describeStep(st v1alpha1.CanaryStep) string {
	switch {
	case st.SetWeight != nil:
		return fmt.Sprintf("setWeight %d", *st.SetWeight)
	case st.Pause != nil && st.Pause.Duration == "":
		return "pause (until mlcd rollout promote)"
	case st.Pause != nil:
		return "pause " + st.Pause.Duration
	case st.Analysis != nil:
		var names []string
		for _, t := range st.Analysis.Templates {
			names = append(names, t.TemplateName)
		}
		return "analysis " + strings.Join(names, ", ")
	}
	return "(empty)"
}
