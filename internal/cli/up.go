package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mlcd-dev/mlcd/internal/controller"

	"github.com/mlcd-dev/mlcd/internal/localcluster"
)

type upOptions struct {
	stateDir       string
	port           int
	podReadyDelay  time.Duration
	registryListen string
	registryOpen   bool
	repo           string
	revision       string
	path           string
	noSync         bool
	apiListen      string
	creds          repoCredFlags
	controller     controllerFlags
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
	cmd.Flags().StringVar(&o.controller.kubeconfig, "kubeconfig", "", "run against this existing cluster (kind, k3d, a dev cluster) instead of the embedded control plane, which is then not built")
	cmd.Flags().StringVar(&o.controller.kubeContext, "context", "", "with --kubeconfig: its context to use (default: its current context)")
	cmd.Flags().IntVar(&o.port, "port", 0, "API server port on 127.0.0.1 (0: the last one used, else a free one)")
	cmd.Flags().DurationVar(&o.podReadyDelay, "pod-ready-delay", time.Second, "delay before a scheduled pod is marked Running and Ready")
	cmd.Flags().StringVar(&o.repo, "repo", "", "Git repository (URL or local path) to sync (default: the bundled example, as a local repo in the state dir)")
	cmd.Flags().StringVar(&o.revision, "revision", "HEAD", "revision of --repo to read the root manifests from")
	cmd.Flags().StringVar(&o.path, "path", "argocd", "directory in --repo whose manifests (Applications, AppProjects, app-of-apps) are applied, recursively")
	cmd.Flags().BoolVar(&o.noSync, "no-sync", false, "start only the control plane and the registry")
	o.creds.add(cmd)
	cmd.Flags().StringVar(&o.apiListen, "api-listen", "127.0.0.1:8080", "address of the API server and /metrics (a free port is used if this one is taken)")
	o.controller.add(cmd, false)
	cmd.Flags().BoolVar(&o.registryOpen, "registry-insecure-no-auth", false, "serve the embedded registry without a token (by default it requires the bearer token mlcd up writes to <state-dir>/registry/token)")
	cmd.Flags().StringVar(&o.registryListen, "registry-listen", "127.0.0.1:5000", "address of the embedded model registry (a free port is used if this one is taken)")
	return cmd
}

func runUp(cmd *cobra.Command, o upOptions) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()
	abs, err := filepath.Abs(o.stateDir)
	if err != nil {
		return err
	}
	o.stateDir = abs

	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return err
	}
	var cluster *localcluster.Cluster
	var cfg *rest.Config
	if o.controller.kubeconfig != "" {
		// An existing cluster (kind, k3d, a dev cluster): no embedded
		// control plane is built or started.
		if cfg, err = restConfigFor(o.controller.kubeconfig, o.controller.kubeContext); err != nil {
			return err
		}
		fmt.Fprintf(out, "using the cluster at %s (kubeconfig %s); no embedded control plane\n", cfg.Host, o.controller.kubeconfig)
	} else {
		fmt.Fprintf(out, "starting local control plane in %s (to use a cluster you already have: mlcd up --kubeconfig FILE) ...\n", o.stateDir)
		started := time.Now()
		cluster, err = localcluster.Start(ctx, localcluster.Options{
			StateDir:      o.stateDir,
			Port:          o.port,
			PodReadyDelay: o.podReadyDelay,
			Progress:      out,
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
		if cfg, err = cluster.RESTConfig(); err != nil {
			_ = cluster.Stop()
			return err
		}
	}
	if o.controller.impersonate(cfg); o.controller.as != "" {
		fmt.Fprintf(out, "acting as %s\n", o.controller.as)
	}
	stopCluster := func() error {
		if cluster == nil {
			return nil
		}
		return cluster.Stop()
	}
	var clusterDone <-chan struct{}
	if cluster != nil {
		clusterDone = cluster.Done()
	}

	regOpts := registryOptions{
		listen: o.registryListen,
		db:     filepath.Join(o.stateDir, "registry", "registry.db"),
	}
	tokenFile := ""
	if !o.registryOpen {
		// The registry requires a token by default: any local process (or
		// a page the browser has open) could otherwise move aliases.
		if tokenFile, regOpts.authToken, err = ensureRegistryToken(o.stateDir); err != nil {
			_ = stopCluster()
			return fmt.Errorf("create the registry token: %w", err)
		}
		os.Setenv("MLFLOW_TRACKING_TOKEN", regOpts.authToken) // this process's registry clients
	}
	regSrv, regLn, err := startRegistry(regOpts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil && strings.Contains(err.Error(), "cannot listen") {
		regOpts.listen = "127.0.0.1:0"
		regSrv, regLn, err = startRegistry(regOpts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	if err != nil {
		_ = stopCluster()
		return err
	}
	regErr := make(chan error, 1)
	go func() { regErr <- serveUntil(ctx, regSrv, regLn) }()
	fmt.Fprintf(out, "model registry (MLflow API): http://%s (db %s)\n", regLn.Addr(), regOpts.db)
	fmt.Fprintf(out, "  export MLFLOW_TRACKING_URI=http://%s\n", regLn.Addr())
	if tokenFile != "" {
		fmt.Fprintf(out, "  export MLFLOW_TRACKING_TOKEN=$(cat %s)\n", tokenFile)
	}

	ctrlErr := make(chan error, 1)
	if !o.noSync {
		if err := startSync(ctx, out, cfg, o, "http://"+regLn.Addr().String(), ctrlErr); err != nil {
			_ = stopCluster()
			return err
		}
	}
	fmt.Fprintln(out, "press Ctrl-C to stop")

	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "stopping ...")
		return stopCluster()
	case err := <-ctrlErr:
		_ = stopCluster()
		return fmt.Errorf("controller stopped: %w", err)
	case err := <-regErr:
		_ = stopCluster()
		return fmt.Errorf("model registry stopped: %w", err)
	case <-clusterDone:
		if err := cluster.Err(); err != nil {
			return fmt.Errorf("control plane stopped: %w", err)
		}
		return fmt.Errorf("control plane stopped")
	}
}

// startSync runs the controller against the local cluster and applies the
// root manifests of the repository.
func startSync(ctx context.Context, out io.Writer, cfg *rest.Config, o upOptions, registryURL string, errc chan<- error) error {
	creds, err := o.creds.credentials()
	if err != nil {
		return err
	}
	repoURL := ""
	if o.repo == "" {
		if repoURL, err = exampleRepo(o.stateDir); err != nil {
			return fmt.Errorf("create example repository: %w", err)
		}
		fmt.Fprintf(out, "example repository: %s\n", repoURL)
		if err := seedExampleRegistry(ctx, registryURL); err != nil {
			return fmt.Errorf("register the example's model versions: %w", err)
		}
	} else if repoURL, err = repoURLOf(o.repo); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(o.stateDir, "controller.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	ctrllog.SetLogger(logr.FromSlogHandler(newLogHandler(logFile)))
	reg, rec := newMetrics()
	opts, err := o.controller.options(filepath.Join(o.stateDir, "cache"), registryURL, rec)
	if err != nil {
		return err
	}
	c, err := controller.New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	go func() {
		if err := c.Start(ctx); err != nil && ctx.Err() == nil {
			errc <- err
		}
	}()
	if !c.Manager.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("controller cache did not sync")
	}
	tokensFile, token, err := ensureAdminToken(o.stateDir)
	if err != nil {
		return fmt.Errorf("create the API token: %w", err)
	}
	apiURL, err := startAPI(ctx, cfg, c, reg, apiOptions{listen: o.apiListen, tokensFile: tokensFile}, errc)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "API server: %s (metrics at %s/metrics); admin token in %s\n", apiURL, apiURL, tokensFile)
	fmt.Fprintf(out, "web UI: %s/ (sign in with that token)\n", apiURL)
	if err := subscribeRegistry(ctx, c.Manager.GetClient(), c.Namespace(), registryURL, apiURL); err != nil {
		fmt.Fprintf(out, "  (registry webhook not set up: %s; new versions are seen at the next poll)\n", err)
	}
	if path, err := saveCLIConfig(apiURL, token); err == nil {
		fmt.Fprintf(out, "  mlcd app list   (server and token saved in %s)\n", path)
	} else {
		fmt.Fprintf(out, "  export MLCD_SERVER=%s MLCD_TOKEN=<token from %s>\n", apiURL, tokensFile)
	}
	if err := storeRepoSecret(ctx, c.Manager.GetClient(), c.Namespace(), repoURL, creds); err != nil {
		return err
	}
	n, err := applyRoot(ctx, c, repoURL, o.revision, o.path, creds)
	if err != nil {
		return fmt.Errorf("apply %s from %s: %w", o.path, repoURL, err)
	}
	fmt.Fprintf(out, "controller syncing: applied %d manifests from %s (path %s); logs in %s\n", n, repoURL, o.path, logFile.Name())
	fmt.Fprintln(out, "  kubectl get applications -A")
	return nil
}

// ensureRegistryToken is the embedded registry's bearer token, kept in
// <stateDir>/registry/token (0600) across restarts.
func ensureRegistryToken(stateDir string) (file, token string, err error) {
	file = filepath.Join(stateDir, "registry", "token")
	if data, err := os.ReadFile(file); err == nil && len(strings.TrimSpace(string(data))) >= 32 {
		return file, strings.TrimSpace(string(data)), nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", "", err
	}
	b := make([]byte, 24)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", "", err
	}
	token = hex.EncodeToString(b)
	return file, token, os.WriteFile(file, []byte(token+"\n"), 0o600)
}
