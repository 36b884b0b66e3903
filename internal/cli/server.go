package cli

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mlcd-dev/mlcd/internal/controller"
)

func newServerCmd() *cobra.Command {
	var f controllerFlags
	var o apiOptions
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the HTTP API (and /metrics) against a cluster where mlcd's controller runs",
		Long: `server serves the API of docs/api.md for the Applications of a cluster. It
reads objects and writes what a user would (a sync operation, the refresh
annotation); the controller (mlcd controller) acts on them. Tokens come from
--tokens-file and the Secret mlcd-api-tokens in --namespace.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg, err := f.restConfig()
			if err != nil {
				return err
			}
			ctrllog.SetLogger(logr.FromSlogHandler(newLogHandler(cmd.ErrOrStderr())))
			cacheDir := f.cacheDir
			if cacheDir == "" {
				base, err := os.UserCacheDir()
				if err != nil {
					base = os.TempDir()
				}
				cacheDir = filepath.Join(base, "mlcd", "server")
			}
			reg, rec := newMetrics()
			opts, err := f.options(cacheDir, "", rec)
			if err != nil {
				return err
			}
			c, err := controller.New(ctx, cfg, controller.ManagerOptions{Options: opts.Options, CacheDir: opts.CacheDir, ReadOnly: true})
			if err != nil {
				return err
			}
			errc := make(chan error, 2)
			go func() { errc <- c.Start(ctx) }()
			if !c.Manager.GetCache().WaitForCacheSync(ctx) {
				return fmt.Errorf("cache did not sync")
			}
			url, err := startAPI(ctx, cfg, c, reg, o, errc)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "API server on %s for %s\n", url, cfg.Host)
			select {
			case <-ctx.Done():
				return nil
			case err := <-errc:
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		},
	}
	f.add(cmd, true)
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to serve on (loopback unless you mean otherwise)")
	cmd.Flags().StringVar(&o.tokensFile, "tokens-file", "", "API tokens (YAML: tokens: [{name, token, role: admin|readonly, projects}])")
	cmd.Flags().BoolVar(&o.insecureNoAuth, "insecure-no-auth", false, "serve without tokens (refused unless --listen is a loopback address)")
	return cmd
}
