package localcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options configure a local control plane.
type Options struct {
	// StateDir holds etcd data, certificates, logs and the kubeconfig.
	// Objects survive a restart on the same StateDir. Default ".mlcd".
	StateDir string
	// Port is the API server port on 127.0.0.1; 0 reuses the last port of
	// this StateDir when free, else picks a free one.
	Port int
	// PodReadyDelay is how long a scheduled pod stays Pending before the
	// simulated node marks it Running and Ready. Default 1s.
	PodReadyDelay time.Duration
	// Binary is the helper to run; empty means Binary(ctx, Progress).
	Binary string
	// Progress, when set, is told what a build of the helper is doing.
	Progress io.Writer
	// StartTimeout bounds the wait for a ready API server. Default 3m.
	StartTimeout time.Duration
}

func (o *Options) defaults() {
	if o.StateDir == "" {
		o.StateDir = ".mlcd"
	}
	if o.PodReadyDelay == 0 {
		o.PodReadyDelay = time.Second
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 3 * time.Minute
	}
}

// Cluster is a running local control plane.
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig for the cluster.
	Kubeconfig string
	// StateDir is the absolute state directory.
	StateDir string

	cmd      *exec.Cmd
	stdin    io.WriteCloser
	done     chan struct{}
	err      error
	once     sync.Once
	stopping atomic.Bool
}

// Start runs the control plane and returns once its API server is ready and
// its nodes are registered. The error of a failed start is one line.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	opts.defaults()
	stateDir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, err
	}
	bin := opts.Binary
	if bin == "" {
		if bin, err = Binary(ctx, opts.Progress); err != nil {
			return nil, err
		}
	}
	args := []string{
		"--state-dir", stateDir,
		"--port", strconv.Itoa(opts.Port),
		"--pod-ready-delay", opts.PodReadyDelay.String(),
		"--watch-stdin",
	}
	cmd := exec.Command(bin, args...)
	// The helper also dies with its parent: Pdeathsig covers a SIGKILLed
	// parent, the closed stdin covers every other exit.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	c := &Cluster{StateDir: stateDir, cmd: cmd, stdin: stdin, done: make(chan struct{})}

	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if path, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- path
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		stderr := cmd.Stderr.(*lockedWriter).String()
		// kube-controller-manager exits the process with status 1 when it
		// is stopped while still starting its controllers; after Stop asked
		// for the shutdown that is not a failure unless the helper said so.
		if err != nil && c.stopping.Load() && !hasErrorLine(stderr) {
			err = nil
		}
		c.err = helperError(err, stderr)
		close(c.done)
	}()

	timer := time.NewTimer(opts.StartTimeout)
	defer timer.Stop()
	select {
	case path := <-ready:
		c.Kubeconfig = path
		return c, nil
	case <-c.done:
		return nil, c.err
	case <-ctx.Done():
		_ = c.Stop()
		return nil, ctx.Err()
	case <-timer.C:
		_ = c.Stop()
		return nil, fmt.Errorf("control plane not ready after %s (see %s)", opts.StartTimeout, filepath.Join(stateDir, "controlplane.log"))
	}
}

// hasErrorLine reports whether the helper printed its "error: " line
// (component logs on stderr may mention errors anywhere in a line).
func hasErrorLine(stderr string) bool {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "error: ") {
			return true
		}
	}
	return false
}

// helperError turns the helper's exit into the one-line reason it printed.
func helperError(err error, stderr string) error {
	if err == nil {
		return nil
	}
	for _, line := range strings.Split(stderr, "\n") {
		if msg, ok := strings.CutPrefix(line, "error: "); ok {
			return errors.New(msg)
		}
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() < 0 {
		return fmt.Errorf("control plane killed: %v", exit)
	}
	tail := strings.TrimSpace(stderr)
	if i := strings.LastIndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	if tail != "" {
		return fmt.Errorf("control plane exited: %v: %s", err, tail)
	}
	return fmt.Errorf("control plane exited: %v", err)
}

// RESTConfig returns a client config for the cluster.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", c.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

// Done is closed when the control plane has exited.
func (c *Cluster) Done() <-chan struct{} { return c.done }

// Err is why the control plane exited; nil after a clean Stop.
func (c *Cluster) Err() error {
	<-c.done
	return c.err
}

// PID is the helper's process id.
func (c *Cluster) PID() int { return c.cmd.Process.Pid }

// Stop asks the control plane to shut down and waits for it, killing it
// after 30s.
func (c *Cluster) Stop() error {
	c.once.Do(func() {
		c.stopping.Store(true)
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	<-c.done
	return c.err
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Keep only the tail: a chatty helper must not grow memory forever.
	if l.w.Len() > 64<<10 {
		s := l.w.String()
		l.w.Reset()
		l.w.WriteString(s[len(s)-32<<10:])
	}
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
