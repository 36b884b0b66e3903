package localcluster_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/mlcd-dev/mlcd/internal/localcluster"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
)

func TestMain(m *testing.M) { os.Exit(clustertest.Run(m)) }

// applyFile server-side applies every document of a testdata file, as
// `kubectl apply --server-side` does.
func applyFile(t *testing.T, env *clustertest.Env, ns, file string) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dyn := dynamic.NewForConfigOrDie(env.Config)
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			break
		}
		gvk := obj.GroupVersionKind()
		gvr := map[string]schema.GroupVersionResource{
			"Deployment":              {Group: "apps", Version: "v1", Resource: "deployments"},
			"Service":                 {Version: "v1", Resource: "services"},
			"HorizontalPodAutoscaler": {Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
			"Pod":                     {Version: "v1", Resource: "pods"},
		}[gvk.Kind]
		data, _ := obj.MarshalJSON()
		if _, err := dyn.Resource(gvr).Namespace(ns).Patch(context.Background(), obj.GetName(), "application/apply-patch+yaml", data, metav1.PatchOptions{FieldManager: "test"}); err != nil {
			t.Fatalf("apply %s %s: %v", gvk.Kind, obj.GetName(), err)
		}
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s; last state: %s", what, timeout, last)
}

func TestDeploymentBecomesAvailableAndIsGarbageCollected(t *testing.T) {
	env := clustertest.Get(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	applyFile(t, env, ns, "model-server.yaml")

	eventually(t, 30*time.Second, "deployment available with 3 ready replicas", func() (bool, string) {
		d, err := env.Client.AppsV1().Deployments(ns).Get(ctx, "model-server", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.ReadyReplicas == 3 {
				return true, ""
			}
		}
		return false, d.Status.String()
	})
	pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=model-server"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != "node-0" {
			t.Errorf("pod %s on node %q, want node-0 (the GPU node is tainted)", p.Name, p.Spec.NodeName)
		}
	}
	if _, err := env.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "model-server", metav1.GetOptions{}); err != nil {
		t.Fatalf("hpa: %v", err)
	}

	if err := env.Client.AppsV1().Deployments(ns).Delete(ctx, "model-server", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "replicasets and pods garbage-collected", func() (bool, string) {
		rs, err1 := env.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		pods, err2 := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err1 != nil || err2 != nil {
			return false, "list failed"
		}
		return len(rs.Items) == 0 && len(pods.Items) == 0, "replicasets and pods remain"
	})
}

func TestGPUPodLandsOnlyOnGPUNode(t *testing.T) {
	env := clustertest.Get(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	applyFile(t, env, ns, "gpu-pod.yaml")
	eventually(t, 30*time.Second, "gpu pod running on gpu-0", func() (bool, string) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "gpu-inference", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if p.Spec.NodeName != "" && p.Spec.NodeName != "gpu-0" {
			t.Fatalf("gpu pod bound to %s, want gpu-0", p.Spec.NodeName)
		}
		return p.Spec.NodeName == "gpu-0" && p.Status.Phase == corev1.PodRunning, string(p.Status.Phase)
	})
}

func TestPodThatFitsNowhereStaysPending(t *testing.T) {
	env := clustertest.Get(t)
	ns := env.Namespace(t)
	ctx := context.Background()
	// A GPU request without the toleration fits no node.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "no-fit"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "example",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}},
		}}},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "pod unschedulable", func() (bool, string) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "no-fit", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return p.Status.Phase == corev1.PodPending && p.Spec.NodeName == "", ""
			}
		}
		return false, p.Status.String()
	})
}

func TestServerReportsRealVersion(t *testing.T) {
	env := clustertest.Get(t)
	v, err := env.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.37.2" {
		t.Fatalf("server version %q, want v1.37.2 (build flags missing?)", v.GitVersion)
	}
}

// TestRestartKeepsObjects starts a second control plane of its own: it is
// SIGKILLed, restarted on the same state dir, and must still hold its
// objects. It also checks the lock and port-in-use errors.
func TestRestartKeepsObjects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own control plane")
	}
	ctx := context.Background()
	dir := t.TempDir()
	c, err := localcluster.Start(ctx, localcluster.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "survivor", Namespace: "default"}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A second control plane on the same state dir is refused.
	if _, err := localcluster.Start(ctx, localcluster.Options{StateDir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second start on a locked state dir: got %v, want an 'in use' error", err)
	}

	proc, _ := os.FindProcess(c.PID())
	_ = proc.Kill()
	<-c.Done()

	c2, err := localcluster.Start(ctx, localcluster.Options{StateDir: dir})
	if err != nil {
		t.Fatalf("restart after SIGKILL: %v", err)
	}
	defer c2.Stop()
	cfg2, _ := c2.RESTConfig()
	got, err := kubernetes.NewForConfigOrDie(cfg2).CoreV1().ConfigMaps("default").Get(ctx, "survivor", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("configmap after restart: %v", err)
	}
	if got.Data["k"] != "v" {
		t.Fatalf("configmap data after restart = %v", got.Data)
	}
	if err := c2.Stop(); err != nil {
		logData, _ := os.ReadFile(filepath.Join(dir, "controlplane.log"))
		lines := strings.Split(strings.TrimSpace(string(logData)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		t.Fatalf("clean stop: %v; log tail:\n%s", err, strings.Join(lines, "\n"))
	}
}

func TestPortInUseIsAClearError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = localcluster.Start(context.Background(), localcluster.Options{StateDir: t.TempDir(), Port: port})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("got %v, want a port-in-use error", err)
	}
}

func TestUnwritableStateDirIsAClearError(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := localcluster.Start(context.Background(), localcluster.Options{StateDir: filepath.Join(file, "state")})
	if err == nil || !strings.Contains(err.Error(), "state dir") {
		t.Fatalf("got %v, want a state dir error", err)
	}
}

func TestCorruptDataDirIsAClearError(t *testing.T) {
	dir := t.TempDir()
	wal := filepath.Join(dir, "etcd", "member", "wal")
	if err := os.MkdirAll(wal, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "etcd", "member", "snap"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wal, "0000000000000000-0000000000000000.wal"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := localcluster.Start(context.Background(), localcluster.Options{StateDir: dir})
	if err == nil || !strings.Contains(err.Error(), "etcd data") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v, want a one-line etcd data error", err)
	}
}
