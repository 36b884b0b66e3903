// Command mlcd-controlplane runs a real Kubernetes control plane on one
// machine for mlcd: embedded etcd, kube-apiserver, the core controllers of
// kube-controller-manager, kube-scheduler and kwok-simulated nodes. No
// container runs: kwok marks scheduled pods Running and Ready.
//
// It is a helper process started by `mlcd up` and by mlcd's integration
// tests (see internal/localcluster in the main module). It lives in its own
// Go module so the main module never imports k8s.io/kubernetes.
//
// Protocol with the parent: when the API server is ready and the nodes are
// registered it writes <state-dir>/kubeconfig and prints one line
// "ready <kubeconfig-path>" on stdout. On failure it prints one line
// "error: <reason>" on stderr and exits 1. It stops on SIGINT, SIGTERM or
// when its stdin is closed (the parent died). Component logs go to
// <state-dir>/controlplane.log.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

type options struct {
	stateDir      string
	port          int
	podReadyDelay time.Duration
	nodeCPU       string
	nodeMemory    string
	nodePods      string
	watchStdin    bool
	fsync         bool
}

func main() {
	var o options
	flag.StringVar(&o.stateDir, "state-dir", ".mlcd", "directory holding etcd data, certificates and the kubeconfig")
	flag.IntVar(&o.port, "port", 0, "API server port on 127.0.0.1 (0: reuse the last one if free, else pick a free port)")
	flag.DurationVar(&o.podReadyDelay, "pod-ready-delay", time.Second, "how long a scheduled pod stays Pending before it is marked Running and Ready")
	flag.StringVar(&o.nodeCPU, "node-cpu", "64", "cpu capacity of each simulated node")
	flag.StringVar(&o.nodeMemory, "node-memory", "256Gi", "memory capacity of each simulated node")
	flag.StringVar(&o.nodePods, "node-pods", "5000", "pod capacity of each simulated node")
	flag.BoolVar(&o.fsync, "etcd-fsync", false, "fsync every etcd write (survive machine crashes, not only process kills)")
	flag.BoolVar(&o.watchStdin, "watch-stdin", false, "stop when stdin is closed (set by a parent process)")
	flag.Parse()

	// The API server, controllers and etcd allocate at a high rate; with
	// Go's default GOGC=100 about a fifth of the CPU goes to the collector.
	// A single-machine control plane has memory to spare and little CPU
	// (the 1,000-app benchmark runs 17% faster at 400). GOGC overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "error: %s\n", oneLine(err))
		os.Exit(1)
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func run(o options) error {
	abs, err := filepath.Abs(o.stateDir)
	if err != nil {
		return err
	}
	o.stateDir = abs
	if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
		return fmt.Errorf("state dir %s is not usable: %w", o.stateDir, errors.Unwrap(err))
	}
	probe := filepath.Join(o.stateDir, ".write-probe")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return fmt.Errorf("state dir %s is not writable", o.stateDir)
	}
	os.Remove(probe)

	unlock, err := lockStateDir(o.stateDir)
	if err != nil {
		return err
	}
	defer unlock()

	logFile, err := os.OpenFile(filepath.Join(o.stateDir, "controlplane.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	defer logFile.Close()
	redirectLogs(logFile)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if o.watchStdin {
		go func() {
			buf := make([]byte, 64)
			for {
				if _, err := os.Stdin.Read(buf); err != nil {
					cancel()
					return
				}
			}
		}()
	}

	cp := &controlPlane{opts: o, pki: pki{dir: filepath.Join(o.stateDir, "pki")}}
	return cp.run(ctx)
}

// redirectLogs sends klog (used by every Kubernetes component) to the log
// file, so the parent's terminal shows only mlcd's own lines.
func redirectLogs(f *os.File) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	_ = fs.Set("v", "0")
	klog.SetOutput(f)
	// kwok logs through log/slog.
	slog.SetDefault(slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelWarn})))
}
