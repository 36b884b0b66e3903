// Package clustertest gives integration tests one embedded control plane
// per test binary and a fresh namespace per test.
//
//	func TestMain(m *testing.M) { os.Exit(clustertest.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		env := clustertest.Get(t)
//		ns := env.Namespace(t)
//		...
//	}
package clustertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mlcd-dev/mlcd/internal/localcluster"
)

// Env is the shared control plane of a test binary.
type Env struct {
	Cluster    *localcluster.Cluster
	Config     *rest.Config
	Kubeconfig string
	Client     kubernetes.Interface
}

var (
	shared   *Env
	startErr error
)

// Run starts the control plane, runs the tests and stops it. Use it from
// TestMain; its result is the exit code.
func Run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mlcd-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{StateDir: dir, StartTimeout: 15 * time.Minute})
	if err != nil {
		startErr = err
	} else {
		defer c.Stop()
		cfg, err := c.RESTConfig()
		if err != nil {
			startErr = err
		} else {
			shared = &Env{Cluster: c, Config: cfg, Kubeconfig: c.Kubeconfig, Client: kubernetes.NewForConfigOrDie(cfg)}
		}
	}
	return m.Run()
}

// RunWithMLCD builds the mlcd binary into *bin (for tests that drive the
// real process), then does what Run does.
func RunWithMLCD(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "mlcd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "mlcd")
	if out, err := exec.Command("go", "build", "-o", *bin, "github.com/mlcd-dev/mlcd/cmd/mlcd").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build mlcd: %v\n%s", err, out)
		return 1
	}
	return Run(m)
}

// Get returns the shared environment, failing the test when the control
// plane did not start.
func Get(t testing.TB) *Env {
	t.Helper()
	if startErr != nil {
		t.Fatalf("embedded control plane: %v", startErr)
	}
	if shared == nil {
		t.Fatal("clustertest.Run was not called from TestMain")
	}
	return shared
}

// Namespace creates a namespace named after the test, deleted when the
// test ends, and waits until its default ServiceAccount exists so pods can
// be created at once.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(t.Name())
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name)
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-")
	ctx := context.Background()
	ns, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = e.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := e.Client.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return ns.Name
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s: default ServiceAccount not created within 30s", ns.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
