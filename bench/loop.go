package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The push pipeline a team scripts without a CD tool: for each app,
// `helm template … | kubectl apply --server-side -f -`, one after another.
// helm and kubectl are built from their Go modules (the versions mlcd
// links) into the user cache dir, once.

const (
	helmModule    = "helm.sh/helm/v4@v4.3.1"
	kubectlModule = "k8s.io/kubectl@v0.37.2"
)

// tools builds helm and kubectl (cached) and returns their paths.
func tools() (helm, kubectl string, err error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "mlcd-bench", "tools")
	helm, kubectl = filepath.Join(dir, "bin", "helm"), filepath.Join(dir, "bin", "kubectl")
	if exists(helm) && exists(kubectl) {
		return helm, kubectl, nil
	}
	logf("loop: building helm and kubectl from their Go modules into %s (once; a few minutes)", dir)
	if err := os.MkdirAll(filepath.Join(dir, "kubectl"), 0o755); err != nil {
		return "", "", err
	}
	files := map[string]string{
		"go.mod": "module benchtools\n\ngo 1.26\n",
		"kubectl/main.go": `package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() { os.Exit(cli.Run(cmd.NewDefaultKubectlCommand())) }
`,
		"tools.go": "//go:build tools\n\npackage tools\n\nimport _ \"helm.sh/helm/v4/cmd/helm\"\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return "", "", err
		}
	}
	steps := [][]string{
		{"go", "get", helmModule, kubectlModule},
		{"go", "mod", "tidy"},
		{"go", "build", "-o", helm, "helm.sh/helm/v4/cmd/helm"},
		{"go", "build", "-o", kubectl, "./kubectl"},
	}
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	return helm, kubectl, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// loop runs helm template | kubectl apply --server-side for each of n apps
// into the "loop" namespaces and returns when the last apply returned.
func loop(ctx context.Context, helm, kubectl, kubeconfig, repo string, n int) error {
	chart := filepath.Join(repo, "models", "fraud-detection")
	// The chart's file:// dependency, as a team would vendor it once.
	if out, err := exec.CommandContext(ctx, helm, "dependency", "build", chart).CombinedOutput(); err != nil {
		return fmt.Errorf("helm dependency build: %v: %s", err, out)
	}
	defer os.RemoveAll(filepath.Join(chart, "charts"))
	for i := range n {
		args := []string{"template", fmt.Sprintf("model-%d", i), chart, "--namespace", teamNamespace("loop", i), "-f", filepath.Join(chart, "values-production.yaml")}
		for _, p := range params(i) {
			args = append(args, "--set", p.Name+"="+p.Value)
		}
		tmpl := exec.CommandContext(ctx, helm, args...)
		apply := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "--field-manager", "bench-loop", "-n", teamNamespace("loop", i), "-f", "-")
		pipe, err := tmpl.StdoutPipe()
		if err != nil {
			return err
		}
		apply.Stdin = pipe
		var errs strings.Builder
		tmpl.Stderr, apply.Stderr = &errs, &errs
		if err := apply.Start(); err != nil {
			return err
		}
		if err := tmpl.Run(); err != nil {
			_ = apply.Wait()
			return fmt.Errorf("helm template model-%d: %v: %s", i, err, errs.String())
		}
		if err := apply.Wait(); err != nil {
			return fmt.Errorf("kubectl apply model-%d: %v: %s", i, err, errs.String())
		}
	}
	return nil
}

// measureLoop fills in the loop's clocks.
func measureLoop(ctx context.Context, res *Result, kubeconfig, repo string, n int, c client.Client) error {
	helm, kubectl, err := tools()
	if err != nil {
		return err
	}
	if err := createNamespaces(ctx, c, "loop", n); err != nil {
		return err
	}
	logf("loop: helm template | kubectl apply --server-side, %d apps one after another", n)
	start := time.Now()
	if err := loop(ctx, helm, kubectl, kubeconfig, repo, n); err != nil {
		return err
	}
	res.LoopSyncedS = time.Since(start).Seconds()
	if err := waitAvailable(ctx, c, "loop", n, start); err != nil {
		return err
	}
	res.LoopHealthyS = time.Since(start).Seconds()
	logf("loop: applied %.1fs, available %.1fs", res.LoopSyncedS, res.LoopHealthyS)
	return nil
}
