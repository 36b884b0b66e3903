package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/configz"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// ports are kept in the state dir so a restart serves on the same address
// when it is still free, and clients' kubeconfigs stay valid.
type ports struct {
	APIServer  int `json:"apiserver"`
	EtcdClient int `json:"etcdClient"`
	EtcdPeer   int `json:"etcdPeer"`
}

type controlPlane struct {
	opts  options
	pki   pki
	ports ports
}

func (cp *controlPlane) statePath(name string) string { return filepath.Join(cp.opts.stateDir, name) }

func (cp *controlPlane) run(ctx context.Context) error {
	if err := cp.pki.ensure(); err != nil {
		return fmt.Errorf("create certificates: %w", err)
	}
	if err := cp.choosePorts(); err != nil {
		return err
	}
	adminKubeconfig := cp.statePath("admin.kubeconfig")
	server := fmt.Sprintf("https://127.0.0.1:%d", cp.ports.APIServer)
	kc, err := cp.pki.kubeconfig(server)
	if err != nil {
		return err
	}
	if err := os.WriteFile(adminKubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}

	etcd, err := cp.startEtcd()
	if err != nil {
		return err
	}
	defer etcd.Close()

	apiCtx, stopAPI := context.WithCancel(context.Background())
	defer stopAPI()
	apiDone := make(chan error, 1)
	go func() { apiDone <- cp.runAPIServer(apiCtx) }()

	restCfg, err := clientcmd.BuildConfigFromFlags("", adminKubeconfig)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = 200, 400
	if err := waitReady(ctx, restCfg, apiDone, etcd); err != nil {
		return err
	}

	// The controllers stop with ctx; the API server and etcd stop after them.
	compCtx, stopComponents := context.WithCancel(ctx)
	defer stopComponents()
	errs := make(chan error, 4)
	go func() { errs <- wrap("kube-controller-manager", cp.runControllerManager(compCtx, adminKubeconfig)) }()
	go func() { errs <- wrap("kube-scheduler", cp.runScheduler(compCtx, adminKubeconfig)) }()
	if err := startNodes(compCtx, restCfg, adminKubeconfig, cp.opts); err != nil {
		return fmt.Errorf("start simulated nodes: %w", err)
	}

	userKubeconfig := cp.statePath("kubeconfig")
	if err := os.WriteFile(userKubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	fmt.Printf("ready %s\n", userKubeconfig)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-apiDone:
		runErr = wrap("kube-apiserver", orStopped(err))
	case err := <-errs:
		if err != nil {
			runErr = err
		}
	case <-etcd.Server.StopNotify():
		runErr = fmt.Errorf("etcd stopped: %v", etcd.Err())
	}
	stopComponents()
	stopAPI()
	select {
	case <-apiDone:
	case <-time.After(15 * time.Second):
	}
	return runErr
}

func orStopped(err error) error {
	if err == nil {
		return errors.New("stopped unexpectedly")
	}
	return err
}

func wrap(component string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("%s: %w", component, err)
}

func (cp *controlPlane) choosePorts() error {
	path := cp.statePath("ports.json")
	var last ports
	if data, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(data, &last)
	}
	if cp.opts.port != 0 {
		if !portFree(cp.opts.port) {
			return fmt.Errorf("port %d on 127.0.0.1 is already in use", cp.opts.port)
		}
		last.APIServer = cp.opts.port
	}
	pick := func(prev int) (int, error) {
		if prev != 0 && portFree(prev) {
			return prev, nil
		}
		return freePort()
	}
	var err error
	// The kernel may hand out the same free port twice in a row (each is
	// closed before the next is asked for): pick again until distinct.
	for attempt := 0; ; attempt++ {
		if cp.ports.APIServer, err = pick(last.APIServer); err != nil {
			return err
		}
		if cp.ports.EtcdClient, err = pick(last.EtcdClient); err != nil {
			return err
		}
		if cp.ports.EtcdPeer, err = pick(last.EtcdPeer); err != nil {
			return err
		}
		if cp.ports.EtcdClient != cp.ports.APIServer && cp.ports.EtcdPeer != cp.ports.APIServer && cp.ports.EtcdPeer != cp.ports.EtcdClient {
			break
		}
		if attempt == 20 {
			return errors.New("could not find three distinct free ports on 127.0.0.1")
		}
		last = ports{} // the remembered ones collide: take fresh ones
	}
	data, _ := json.Marshal(cp.ports)
	return os.WriteFile(path, data, 0o600)
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (cp *controlPlane) startEtcd() (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "mlcd"
	cfg.Dir = cp.statePath("etcd")
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{cp.statePath("etcd.log")}
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", cp.ports.EtcdClient)}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", cp.ports.EtcdPeer)}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.QuotaBackendBytes = 8 << 30
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "5m"
	// A local cluster for development and tests: writes reach the OS but
	// are not fsynced, so a killed process loses nothing and only a
	// machine crash could lose the last writes. This is the single largest
	// cost of a sync on a small disk.
	cfg.UnsafeNoFsync = !cp.opts.fsync

	e, err := startEtcdSafely(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd data in %s cannot be opened (corrupt or from another version? move it away to start fresh): %v", cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd data in %s cannot be served: %v", cfg.Dir, err)
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcd in %s did not become ready within 60s (see %s)", cfg.Dir, cp.statePath("etcd.log"))
	}
}

func parseFlags(fss map[string]*pflag.FlagSet, args []string) error {
	fs := pflag.NewFlagSet("component", pflag.ContinueOnError)
	for _, f := range fss {
		fs.AddFlagSet(f)
	}
	return fs.Parse(args)
}

func (cp *controlPlane) runAPIServer(ctx context.Context) error {
	s := apiserveroptions.NewServerRunOptions()
	fss := s.Flags()
	args := []string{
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", cp.ports.EtcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(cp.ports.APIServer),
		"--cert-dir=" + cp.pki.path("generated"),
		"--tls-cert-file=" + cp.pki.serverCert(),
		"--tls-private-key-file=" + cp.pki.serverKey(),
		"--client-ca-file=" + cp.pki.caCert(),
		"--service-account-key-file=" + cp.pki.saPub(),
		"--service-account-signing-key-file=" + cp.pki.saKey(),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/12",
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--max-requests-inflight=1000",
		"--max-mutating-requests-inflight=500",
		"--endpoint-reconciler-type=none",
	}
	if err := parseFlags(fss.FlagSets, args); err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return utilerrors.NewAggregate(errs)
	}
	return apiserverapp.Run(ctx, completed)
}

func (cp *controlPlane) runControllerManager(ctx context.Context, kubeconfig string) error {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	fss := s.Flags(kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases())
	s.ParsedFlags = &fss
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=*",
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file=" + cp.pki.saKey(),
		"--root-ca-file=" + cp.pki.caCert(),
		"--cluster-signing-cert-file=" + cp.pki.caCert(),
		"--cluster-signing-key-file=" + cp.pki.caKey(),
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		"--concurrent-deployment-syncs=20",
		"--concurrent-replicaset-syncs=20",
		"--concurrent-gc-syncs=50",
		"--concurrent-namespace-syncs=20",
	}
	if err := parseFlags(fss.FlagSets, args); err != nil {
		return err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	configz.Delete(kcmapp.ConfigzName)
	c, err := s.Config(ctx, kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases())
	if err != nil {
		return err
	}
	return kcmapp.Run(ctx, c.Complete())
}

func (cp *controlPlane) runScheduler(ctx context.Context, kubeconfig string) error {
	o := schedoptions.NewOptions()
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	}
	if err := parseFlags(o.Flags.FlagSets, args); err != nil {
		return err
	}
	configz.Delete("componentconfig")
	cc, sched, err := schedapp.Setup(ctx, o)
	if err != nil {
		return err
	}
	return schedapp.Run(ctx, cc, sched)
}

// waitReady polls /readyz until it answers ok, the API server exits, or
// the parent context ends.
func waitReady(ctx context.Context, cfg *rest.Config, apiDone <-chan error, etcd *embed.Etcd) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.After(120 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-apiDone:
			return wrap("kube-apiserver", orStopped(err))
		case <-etcd.Server.StopNotify():
			return fmt.Errorf("etcd stopped: %v", etcd.Err())
		case <-deadline:
			return fmt.Errorf("kube-apiserver not ready after 120s: %s", last)
		case <-tick.C:
			body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			if err == nil && strings.TrimSpace(string(body)) == "ok" {
				return nil
			}
			if err != nil {
				last = err.Error()
			}
		}
	}
}

// startEtcdSafely turns etcd's panics on damaged data (it dereferences nil
// when the WAL is unreadable) into an error.
func startEtcdSafely(cfg *embed.Config) (e *embed.Etcd, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("etcd panicked while loading its data: %v", r)
		}
	}()
	return embed.StartEtcd(cfg)
}
