package cli

import (
	"fmt"
	"github.com/mlcd-dev/mlcd/internal/egress"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/metrics"
	"github.com/mlcd-dev/mlcd/internal/registry"
)

type controllerFlags struct {
	kubeconfig    string
	kubeContext   string
	as            string
	metricsListen string
	appNamespaces string
	setNamespaces string
	pollInterval  time.Duration
	syncTimeout   time.Duration
	cacheDir      string
	namespace     string
	registry      string
	concurrency   int
	shard, shards int
	leaderElect   bool
	leaseDuration time.Duration
	egressAllow   string
	gitNotes      bool
	committer     string
}

func (f *controllerFlags) add(cmd *cobra.Command, withKubeconfig bool) {
	if withKubeconfig {
		cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default $KUBECONFIG, ~/.kube/config or in-cluster)")
		cmd.Flags().StringVar(&f.kubeContext, "context", "", "kubeconfig context (default: its current context)")
		cmd.Flags().StringVar(&f.cacheDir, "cache-dir", "", "Git cache directory (default the user cache dir)")
	}
	egressDefault := "" // a controller in a cluster: public addresses only
	if !withKubeconfig {
		egressDefault = "loopback" // mlcd up: the local example's servers run on 127.0.0.1
	}
	cmd.Flags().StringVar(&f.egressAllow, "egress-allow", egressDefault, "address ranges that analysis metrics (web, Prometheus, golden sets) may reach besides public ones: comma-separated loopback, private (RFC 1918, 100.64/10, fc00::/7) or CIDRs such as 10.96.0.0/12; link-local and cloud-metadata addresses are always refused")
	cmd.Flags().StringVar(&f.committer, "committer", "mlcd <mlcd@localhost>", "the identity mlcd commits reverts, promotions and notes as (never the host's user.name)")
	cmd.Flags().BoolVar(&f.gitNotes, "git-notes", true, "record on each commit a governed app runs healthy a note under refs/notes/mlcd of its repository (app, environment, model version, health), pushed with the repository's credentials")
	cmd.Flags().StringVar(&f.as, "as", "", "act as this user (impersonation), e.g. system:serviceaccount:argocd:mlcd-controller to run with the RBAC of deploy/")
	cmd.Flags().StringVar(&f.appNamespaces, "app-namespaces", "", "comma-separated globs of further namespaces whose Applications are reconciled, each only if its AppProject lists the namespace in spec.sourceNamespaces (default: only the control-plane namespace)")
	cmd.Flags().StringVar(&f.setNamespaces, "applicationset-namespaces", "", "comma-separated globs of further namespaces whose ApplicationSets are reconciled (default: only the control-plane namespace's: a set's generators read repositories and create Applications with the controller's rights)")
	cmd.Flags().DurationVar(&f.pollInterval, "poll-interval", v1alpha1.DefaultPollInterval, "how often repositories are fetched without a refresh request")
	cmd.Flags().DurationVar(&f.syncTimeout, "sync-timeout", controller.DefaultSyncTimeout, "how long a sync with waves or hooks may take before it fails (a hook that never finishes)")
	cmd.Flags().StringVar(&f.registry, "registry", "", "model registry URL for model gates and write-back (default $MLFLOW_TRACKING_URI)")
	cmd.Flags().IntVar(&f.concurrency, "concurrency", controller.DefaultConcurrency, "Applications reconciled at once (each mostly waits on the API server and Git)")
	cmd.Flags().IntVar(&f.shards, "shards", 1, "how many controller shards split the Applications (each app to one, by a consistent hash of namespace/name or its mlcd.io/shard annotation); a shard labels what it applies mlcd.io/shard=I and caches only those objects")
	cmd.Flags().IntVar(&f.shard, "shard", -1, "this controller's shard, 0 … shards-1 (default: the ordinal at the end of the pod's hostname, as a StatefulSet names its pods; 0 when unsharded)")
	cmd.Flags().BoolVar(&f.leaderElect, "leader-elect", false, "run only while holding the shard's Lease in the control-plane namespace (replicas of a shard stand by)")
	cmd.Flags().DurationVar(&f.leaseDuration, "lease-duration", 15*time.Second, "with --leader-elect: how long a dead leader holds its shard (a standby takes over within this plus a retry period of a 7.5th of it)")
	cmd.Flags().StringVar(&f.namespace, "namespace", "argocd", "the control-plane namespace: AppProjects, repository Secrets, signing keys and known hosts are read only from here")
}

// options builds the controller's options; rec, when not nil, records
// its metrics (and the registry client's requests).
func (f *controllerFlags) options(cacheDir, registryURL string, rec *metrics.Recorder) (controller.ManagerOptions, error) {
	var nss []string
	for _, ns := range strings.Split(f.appNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			nss = append(nss, ns)
		}
	}
	var setNss []string
	for _, ns := range strings.Split(f.setNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			setNss = append(setNss, ns)
		}
	}
	shard, err := f.shardIndex()
	if err != nil {
		return controller.ManagerOptions{}, err
	}
	eg, err := egress.Parse(f.egressAllow)
	if err != nil {
		return controller.ManagerOptions{}, fmt.Errorf("--egress-allow: %w", err)
	}
	o := controller.ManagerOptions{
		Options:        controller.Options{Egress: eg, NoGitNotes: !f.gitNotes, CommitterName: committerName(f.committer), CommitterEmail: committerEmail(f.committer), PollInterval: f.pollInterval, SyncTimeout: f.syncTimeout, AppNamespaces: nss, AppSetNamespaces: setNss, ControllerNamespace: f.namespace, MaxConcurrentReconciles: f.concurrency, Shard: shard, Shards: f.shards},
		CacheDir:       cacheDir,
		LeaderElection: f.leaderElect,
	}
	if f.leaseDuration > 0 {
		o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = f.leaseDuration, f.leaseDuration*2/3, max(f.leaseDuration*2/15, 500*time.Millisecond)
	}
	if registryURL == "" {
		registryURL = f.registry
	}
	if rec != nil {
		o.Recorder = rec
	}
	if ro := registry.OptionsFromEnv(registryURL); ro.URL != "" {
		if rec != nil {
			ro.OnRequest = rec.RegistryRequest
		}
		// A hanging registry holds a gated app's reconcile (never the
		// others') for at most this long per attempt.
		ro.Timeout = 10 * time.Second
		c, err := registry.NewClient(ro)
		if err != nil {
			return o, err
		}
		o.Registry = c
	}
	return o, nil
}

func newControllerCmd() *cobra.Command {
	var f controllerFlags
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the Application controller against a cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg, err := f.restConfig()
			if err != nil {
				return err
			}
			cacheDir := f.cacheDir
			if cacheDir == "" {
				base, err := os.UserCacheDir()
				if err != nil {
					base = os.TempDir()
				}
				cacheDir = filepath.Join(base, "mlcd", "controller")
			}
			ctrllog.SetLogger(logr.FromSlogHandler(newLogHandler(cmd.ErrOrStderr())))
			var reg *prometheus.Registry
			var rec *metrics.Recorder
			if f.metricsListen != "" {
				reg, rec = newMetrics()
			}
			opts, err := f.options(cacheDir, "", rec)
			if err != nil {
				return err
			}
			c, err := controller.New(ctx, cfg, opts)
			if err != nil {
				return err
			}
			if reg != nil {
				ln, err := net.Listen("tcp", f.metricsListen)
				if err != nil {
					return fmt.Errorf("--metrics-listen: %w", err)
				}
				mux := http.NewServeMux()
				mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
				srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = serveUntil(ctx, srv, ln) }()
				fmt.Fprintf(cmd.OutOrStdout(), "metrics on http://%s/metrics\n", ln.Addr())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "controller running against %s\n", cfg.Host)
			return c.Start(ctx)
		},
	}
	f.add(cmd, true)
	cmd.Flags().StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus metrics (/metrics) and /healthz on this address (default: none)")
	return cmd
}

// restConfig is the cluster of --kubeconfig and --context, acting as --as.
func (f *controllerFlags) restConfig() (*rest.Config, error) {
	cfg, err := restConfigFor(f.kubeconfig, f.kubeContext)
	if err != nil {
		return nil, err
	}
	f.impersonate(cfg)
	return cfg, nil
}

// impersonate makes cfg act as --as, when given.
func (f *controllerFlags) impersonate(cfg *rest.Config) {
	if f.as != "" {
		cfg.Impersonate.UserName = f.as
	}
}

func restConfig(kubeconfig string) (*rest.Config, error) { return restConfigFor(kubeconfig, "") }

func restConfigFor(kubeconfig, kubeContext string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

// shardIndex is --shard, or the ordinal of a StatefulSet pod's hostname
// (mlcd-controller-2 → 2) when sharded and --shard is not given.
func (f *controllerFlags) shardIndex() (int, error) {
	if f.shards <= 1 {
		if f.shard > 0 {
			return 0, fmt.Errorf("--shard %d needs --shards greater than %d", f.shard, f.shard)
		}
		return 0, nil
	}
	shard := f.shard
	if shard < 0 {
		host, _ := os.Hostname()
		i := strings.LastIndex(host, "-")
		n, err := strconv.Atoi(host[i+1:])
		if i < 0 || err != nil {
			return 0, fmt.Errorf("--shards %d without --shard: the hostname %q has no StatefulSet ordinal; pass --shard", f.shards, host)
		}
		shard = n
	}
	if shard >= f.shards {
		return 0, fmt.Errorf("shard %d is not below --shards %d", shard, f.shards)
	}
	return shard, nil
}

// committerName and committerEmail split "Name <email>".
func committerName(s string) string {
	name, _, _ := strings.Cut(s, "<")
	return strings.TrimSpace(name)
}

func committerEmail(s string) string {
	_, rest, ok := strings.Cut(s, "<")
	if !ok {
		return ""
	}
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), ">"))
}
