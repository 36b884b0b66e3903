// Command gendeploy writes deploy/'s generated files: mlcd's CRDs (for the
// Helm chart and the Kustomize base) and the base's install.yaml, the
// chart rendered with its default values.
//
//	go run ./hack/gendeploy     # from the repository root
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mlcd-dev/mlcd/deploy"
)

func main() {
	files, err := deploy.Generate("deploy")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendeploy:", err)
		os.Exit(1)
	}
	for _, name := range deploy.Generated {
		p := filepath.Join("deploy", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "gendeploy:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gendeploy:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", p)
	}
}
