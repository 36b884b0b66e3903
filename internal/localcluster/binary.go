package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
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
func Binary(ctx context.Context) (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", BinaryEnv, p, err)
		}
		return p, nil
	}
	if src, ok := sourceDir(); ok {
		return build(ctx, src)
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
func build(ctx context.Context, src string) (string, error) {
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
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", LDFlags, "-o", out, ".")
	cmd.Dir = src
	if msg, err := cmd.CombinedOutput(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return "", fmt.Errorf("build %s in %s: %s", BinaryName, src, msg)
		}
		return "", fmt.Errorf("build %s: %w", BinaryName, err)
	}
	return out, nil
}
