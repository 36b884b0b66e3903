package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/server"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

type waitOptions struct {
	sync, health, operation bool
	// after is the operation state before a requested sync: with
	// operation set, the wait ends only once a newer operation finished.
	after   *v1alpha1.OperationState
	timeout time.Duration
}

// ranSince reports whether op is a finished operation newer than before.
func ranSince(before, op *v1alpha1.OperationState) bool {
	if op == nil || op.FinishedAt == nil || op.Phase == v1alpha1.PhaseRunning {
		return false
	}
	if before == nil || before.FinishedAt == nil {
		return true
	}
	// Timestamps have second precision: compare what else tells two
	// operations apart too.
	return !op.StartedAt.Equal(&before.StartedAt) || !op.FinishedAt.Equal(before.FinishedAt) ||
		op.Phase != before.Phase || op.Message != before.Message || initiator(op) != initiator(before)
}

func initiator(op *v1alpha1.OperationState) v1alpha1.OperationInitiator {
	if op.Operation == nil {
		return v1alpha1.OperationInitiator{}
	}
	return op.Operation.InitiatedBy
}

func newAppWaitCmd(f *apiFlags) *cobra.Command {
	var o waitOptions
	cmd := &cobra.Command{
		Use:   "wait APP",
		Short: "Wait until an Application is Synced and/or Healthy (both when neither flag is given)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !o.sync && !o.health {
				o.sync, o.health = true, true
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			return waitFor(cmd.Context(), cmd.OutOrStdout(), c, args[0], o)
		},
	}
	cmd.Flags().BoolVar(&o.sync, "sync", false, "wait for sync status Synced")
	cmd.Flags().BoolVar(&o.health, "health", false, "wait for health status Healthy")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long (exit status 1, saying why)")
	return cmd
}

// waitFor polls the app until it meets o; on a terminal it keeps one
// progress line, elsewhere it prints a line per change.
func waitFor(ctx context.Context, out io.Writer, c *server.Client, name string, o waitOptions) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	tty := false
	if f, ok := out.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	start := time.Now()
	last := ""
	sawRequest := false
	// On a terminal: one spinner line with the state and elapsed time
	// (schollz/progressbar); elsewhere a plain line per change.
	var bar *progressbar.ProgressBar
	if tty {
		bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(out), progressbar.OptionSpinnerType(14),
			progressbar.OptionSetElapsedTime(true), progressbar.OptionSetDescription(name), progressbar.OptionClearOnFinish())
	}
	for {
		a, err := c.GetApp(ctx, name)
		state := "unreachable"
		var ae *server.Error
		switch {
		case errors.As(err, &ae) && ae.Status == 404:
			state = "not found (yet)" // an app-of-apps may still create it
		case errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 403):
			return err
		}
		done := false
		if a != nil && err == nil {
			s := a.Status
			state = fmt.Sprintf("sync %s, health %s", dash(s.Sync.Status), dash(s.Health.Status))
			if len(s.Conditions) > 0 {
				state += ": " + s.Conditions[0].Type + ": " + s.Conditions[0].Message
			}
			if o.operation {
				switch op := s.OperationState; {
				case a.SyncRequested():
					state += ", sync requested"
				case op != nil && op.FinishedAt != nil:
					state += fmt.Sprintf(", last sync %s at %s", op.Phase, op.StartedAt.UTC().Format(time.RFC3339))
				}
			}
			sawRequest = sawRequest || a.SyncRequested()
			done = (!o.sync || s.Sync.Status == v1alpha1.SyncStatusSynced) &&
				(!o.health || s.Health.Status == v1alpha1.HealthHealthy) &&
				(!o.operation || (!a.SyncRequested() && (sawRequest || ranSince(o.after, s.OperationState))))
		}
		line := fmt.Sprintf("%s: %s (%s)", name, state, time.Since(start).Round(time.Second))
		switch {
		case tty:
			bar.Describe(fmt.Sprintf("%s: %s", name, state))
			_ = bar.Add(1)
		case state != last:
			fmt.Fprintln(out, line)
		}
		last = state
		if done {
			if tty {
				_ = bar.Finish()
				fmt.Fprintln(out, line)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if tty {
				_ = bar.Finish()
				fmt.Fprintln(out, line)
			}
			return &ExitError{Code: 1, Message: fmt.Sprintf("timed out after %s waiting for %s: %s", o.timeout, name, last)}
		case <-time.After(time.Second):
		}
	}
}
