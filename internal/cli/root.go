// Package cli holds mlcd's cobra commands. Commands parse flags and call the
// same engine packages the controller uses; they hold no engine logic.
package cli

import (
	"github.com/spf13/cobra"
)

// NewRoot builds the mlcd command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "mlcd",
		Short:         "GitOps continuous delivery for machine-learning models on Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newUpCmd(), newRegistryCmd(), newModelCmd(), newControllerCmd(), newServerCmd(), newAppCmd(), newAppSetCmd(), newRolloutCmd(), newInfraCmd(), newDiffCmd())
	return root
}
