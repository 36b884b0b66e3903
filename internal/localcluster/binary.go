package localcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// BinaryName is the file name of the control-plane helper.
const BinaryName = "mlcd-controlplane"

// BinaryEnv names an environment variable that points at a prebuilt helper.
const BinaryEnv = "MLCD_CONTROLPLANE"

// LDFlags are the version flags the helper must be built with: without them
// the API server reports v0.0.0 and kubectl and Helm refuse it.
const LDFlags = "-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"

// Binary finds the control-plane helper, building it when mlcd runs from a
// source checkout. It looks, in order, at $MLCD_CONTROLPLANE, a source
// checkout above the working directory (built into the user cache dir; an
// up-to-date build only relinks if something changed), the directory of
// the running executable, and $PATH.
//
// progress, when not nil, is told what a build is doing: a first build
// compiles the whole Kubernetes control plane (see README for the time).
func Binary(ctx context.Context, progress io.Writer) (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", BinaryEnv, p, err)
		}
		return p, nil
	}
	if src, ok := sourceDir(); ok {
		return build(ctx, src, progress)
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), BinaryName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(BinaryName); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("control-plane helper %s not found: run mlcd from its source checkout, put %s on PATH, or set %s", BinaryName, BinaryName, BinaryEnv)
}

// sourceDir walks up from the working directory to a checkout holding the
// control plane's module.
func sourceDir() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		candidate := filepath.Join(dir, "controlplane")
		if _, err := os.Stat(filepath.Join(candidate, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "internal", "localcluster")); err == nil {
				return candidate, true
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// build runs `go build` for the helper under a file lock, so parallel test
// binaries build it once.
func build(ctx context.Context, src string, progress io.Writer) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "mlcd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create build cache dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "build.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	out := filepath.Join(dir, BinaryName)
	if progress == nil {
		progress = io.Discard
	}
	total := countPackages(ctx, src)
	fmt.Fprintf(progress, "building the control-plane helper %s from %s (%d packages; a first build compiles Kubernetes: about 15 minutes on 2 cores, later runs only relink) ...\n", BinaryName, src, total)
	started := time.Now()
	// -v names each package as it is compiled: count them for progress.
	cmd := exec.CommandContext(ctx, "go", "build", "-v", "-ldflags", LDFlags, "-o", out, ".")
	cmd.Dir = src
	cmd.Env = goEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("build %s: %w", BinaryName, err)
	}
	var compiled int
	var errLines []string
	lastReport := time.Now()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, ":") || strings.Contains(line, " ") {
			errLines = append(errLines, line) // compiler output, not a package name
			continue
		}
		compiled++
		if time.Since(lastReport) >= 10*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(progress, "  building: %d of up to %d packages compiled (%s)\n", compiled, total, time.Since(started).Round(time.Second))
		}
	}
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return "", fmt.Errorf("build %s in %s: %s", BinaryName, src, strings.Join(errLines, "\n"))
		}
		return "", fmt.Errorf("build %s: %w", BinaryName, err)
	}
	fmt.Fprintf(progress, "control-plane helper ready in %s (%d packages compiled, the rest cached)\n", time.Since(started).Round(time.Second), compiled)
	return out, nil
}

// countPackages is how many packages the helper depends on (0 when go
// list fails: the build then reports its own error).
func countPackages(ctx context.Context, src string) int {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", ".")
	cmd.Dir = src
	cmd.Env = goEnv()
	out, err := cmd.Output()
	if err != nil {
		return 0
	}
	return strings.Count(string(out), "\n")
}

// goEnv is the environment for the go command: the toolchain this binary
// was built with unless GOTOOLCHAIN names another one (controlplane/'s
// go.mod requires the project's toolchain, which a machine's default
// GOTOOLCHAIN=local may not be).
func goEnv() []string {
	env := os.Environ()
	if tc := os.Getenv("GOTOOLCHAIN"); tc == "" || tc == "local" {
		env = append(env, "GOTOOLCHAIN="+runtime.Version())
	}
	return env
}
