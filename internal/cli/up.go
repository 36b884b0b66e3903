package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlcd-dev/mlcd/internal/localcluster"
)

type upOptions struct {
	stateDir       string
	port           int
	podReadyDelay  time.Duration
	registryListen string
}

func newUpCmd() *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run mlcd locally: an embedded Kubernetes control plane on 127.0.0.1",
		Long: `up starts a real Kubernetes control plane (kube-apiserver, etcd, core
controllers, scheduler) with simulated nodes on 127.0.0.1 and keeps it
running until Ctrl-C. Objects persist in --state-dir across restarts.

No containers run: simulated nodes mark scheduled pods Running and Ready.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUp(cmd, o)
		},
	}
	cmd.Flags().StringVar(&o.stateDir, "state-dir", ".mlcd", "directory for cluster data, certificates, logs and the kubeconfig")
	cmd.Flags().IntVar(&o.port, "port", 0, "API server port on 127.0.0.1 (0: the last one used, else a free one)")
	cmd.Flags().DurationVar(&o.podReadyDelay, "pod-ready-delay", time.Second, "delay before a scheduled pod is marked Running and Ready")
	cmd.Flags().StringVar(&o.registryListen, "registry-listen", "127.0.0.1:5000", "address of the embedded model registry (a free port is used if this one is taken)")
	return cmd
}

func runUp(cmd *cobra.Command, o upOptions) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()

	fmt.Fprintf(out, "starting local control plane in %s ...\n", o.stateDir)
	started := time.Now()
	cluster, err := localcluster.Start(ctx, localcluster.Options{
		StateDir:      o.stateDir,
		Port:          o.port,
		PodReadyDelay: o.podReadyDelay,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	fmt.Fprintf(out, "control plane ready in %s (pid %d)\n", time.Since(started).Round(100*time.Millisecond), cluster.PID())
	fmt.Fprintf(out, "kubeconfig: %s\n", cluster.Kubeconfig)
	fmt.Fprintf(out, "  export KUBECONFIG=%s\n", cluster.Kubeconfig)
	fmt.Fprintln(out, "nodes: node-0 (cpu) and gpu-0 (nvidia.com/gpu, tainted nvidia.com/gpu=present:NoSchedule)")
	fmt.Fprintln(out, "note: no containers run here; simulated nodes mark scheduled pods Running and Ready")

	regOpts := registryOptions{
		listen: o.registryListen,
		db:     filepath.Join(o.stateDir, "registry", "registry.db"),
	}
	regSrv, regLn, err := startRegistry(regOpts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil && strings.Contains(err.Error(), "cannot listen") {
		regOpts.listen = "127.0.0.1:0"
		regSrv, regLn, err = startRegistry(regOpts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	if err != nil {
		_ = cluster.Stop()
		return err
	}
	regErr := make(chan error, 1)
	go func() { regErr <- serveUntil(ctx, regSrv, regLn) }()
	fmt.Fprintf(out, "model registry (MLflow API): http://%s (db %s)\n", regLn.Addr(), regOpts.db)
	fmt.Fprintf(out, "  export MLFLOW_TRACKING_URI=http://%s\n", regLn.Addr())
	fmt.Fprintln(out, "press Ctrl-C to stop")

	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "stopping ...")
		return cluster.Stop()
	case err := <-regErr:
		_ = cluster.Stop()
		return fmt.Errorf("model registry stopped: %w", err)
	case <-cluster.Done():
		if err := cluster.Err(); err != nil {
			return fmt.Errorf("control plane stopped: %w", err)
		}
		return fmt.Errorf("control plane stopped")
	}
}
