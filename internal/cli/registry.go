package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlcd-dev/mlcd/internal/registry"
)

type registryOptions struct {
	listen     string
	db         string
	artifacts  string
	authToken  string
	basicUsers []string
}

func newRegistryCmd() *cobra.Command {
	var o registryOptions
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run the embedded MLflow-compatible model registry",
		Long: `registry serves MLflow's model-registry REST API (/api/2.0/mlflow/...) and
artifact proxy from a SQLite file, so MLflow clients and mlcd work against it
unchanged. It listens on 127.0.0.1 unless told otherwise.

Authentication is off unless --auth-token (Bearer) or --basic-auth user:password
is given; then every route requires it. The token may also come from
MLCD_REGISTRY_TOKEN so it stays out of the process list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.authToken == "" {
				o.authToken = os.Getenv("MLCD_REGISTRY_TOKEN")
			}
			srv, ln, err := startRegistry(o, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
			if err != nil {
				return err
			}
			defer srv.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "registry listening on http://%s (db %s)\n", ln.Addr(), o.db)
			fmt.Fprintf(cmd.OutOrStdout(), "  export MLFLOW_TRACKING_URI=http://%s\n", ln.Addr())
			return serveUntil(ctx, srv, ln)
		},
	}
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:5000", "address to listen on")
	cmd.Flags().StringVar(&o.db, "db", "registry.db", "SQLite database file")
	cmd.Flags().StringVar(&o.artifacts, "artifacts", "", "artifact directory (default: artifacts/ next to the db)")
	cmd.Flags().StringVar(&o.authToken, "auth-token", "", "require this Bearer token on every route")
	cmd.Flags().StringArrayVar(&o.basicUsers, "basic-auth", nil, "require HTTP Basic auth; user:password, repeatable")
	return cmd
}

// startRegistry opens the registry and binds its listener.
func startRegistry(o registryOptions, log *slog.Logger) (*http.Server, net.Listener, error) {
	users := map[string]string{}
	for _, u := range o.basicUsers {
		name, pass, ok := strings.Cut(u, ":")
		if !ok || name == "" {
			return nil, nil, fmt.Errorf("--basic-auth wants user:password, got %q", redactPassword(u))
		}
		users[name] = pass
	}
	reg, err := registry.NewServer(registry.ServerOptions{
		DB: o.db, ArtifactsDir: o.artifacts, AuthToken: o.authToken, BasicUsers: users, Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		reg.Close()
		return nil, nil, fmt.Errorf("registry cannot listen on %s: %w", o.listen, unwrapOpError(err))
	}
	srv := &http.Server{Handler: reg, ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(func() { reg.Close() })
	return srv, ln, nil
}

func redactPassword(s string) string {
	if name, _, ok := strings.Cut(s, ":"); ok {
		return name + ":***"
	}
	return s
}

func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}

// serveUntil serves until ctx ends, then shuts down gracefully.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	}
}
