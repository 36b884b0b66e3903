// Command mlcd is GitOps continuous delivery for machine-learning models on
// Kubernetes. This file only wires flags to internal/cli.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/mlcd-dev/mlcd/internal/cli"
)

func main() {
	if err := cli.NewRoot().Execute(); err != nil {
		var exit *cli.ExitError
		if errors.As(err, &exit) {
			if exit.Message != "" {
				fmt.Fprintf(os.Stderr, "error: %s\n", exit.Message)
			}
			os.Exit(exit.Code)
		}
		fmt.Fprintf(os.Stderr, "error: %s\n", err)
		os.Exit(1)
	}
}
