package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/deploy"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

var mlcdBin string

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(clustertest.RunWithMLCD(m, &mlcdBin))
}

// TestGeneratedIsCurrent: the CRDs and the Kustomize base are what
// `go run ./hack/gendeploy` makes from the chart and api/v1alpha1 today.
func TestGeneratedIsCurrent(t *testing.T) {
	files, err := deploy.Generate(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range deploy.Generated {
		have, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, files[name]) {
			t.Errorf("deploy/%s is not current: run go run ./hack/gendeploy", name)
		}
	}
}

// build is `kustomize build base`.
func build(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "base")
	if err != nil {
		t.Fatal(err)
	}
	data, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	out, err := manifest.Parse("deploy/base", data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applyAll server-side applies objs with strict field validation
// (unknown or duplicate fields are errors), CRDs and Namespaces first.
func applyAll(t *testing.T, c client.Client, objs []*unstructured.Unstructured, opts ...client.PatchOption) {
	t.Helper()
	ctx := context.Background()
	first := func(o *unstructured.Unstructured) bool {
		return o.GetKind() == "CustomResourceDefinition" || o.GetKind() == "Namespace"
	}
	for _, pass := range []bool{true, false} {
		for _, o := range objs {
			if first(o) != pass {
				continue
			}
			o := o.DeepCopy()
			if err := c.Patch(ctx, o, client.Apply, append([]client.PatchOption{client.FieldOwner("deploy-test"), client.ForceOwnership, client.FieldValidation("Strict")}, opts...)...); err != nil {
				t.Fatalf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
		if pass {
			var crds []string
			for _, o := range objs {
				if o.GetKind() == "CustomResourceDefinition" {
					crds = append(crds, o.GetName())
				}
			}
			err := controller.WaitEstablished(ctx, c, crds)
			if err != nil {
				t.Fatalf("CRDs not established: %v", err)
			}
		}
	}
}

// TestInstall: deploy/base applies to a real API server with strict
// validation (so does the chart with other values, as a dry run); then
// `mlcd up --kubeconfig … --as` the base's ServiceAccount syncs the bundled
// example with only the base's RBAC, and an app deploying a kind outside
// the ClusterRole mlcd-apply fails with a message saying so.
func TestInstall(t *testing.T) {
	env := clustertest.Get(t)
	c, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	objs := build(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	for _, k := range []string{"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "StatefulSet", "Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget"} {
		if kinds[k] == 0 {
			t.Errorf("deploy/base has no %s", k)
		}
	}
	applyAll(t, c, objs)
	// Another shape of the chart: two shards, no standby, no policies.
	other, err := deploy.Render("chart/mlcd", deploy.Namespace, map[string]any{"controller": map[string]any{"shards": 2, "standby": false}, "networkPolicy": map[string]any{"enabled": false}})
	if err != nil {
		t.Fatal(err)
	}
	otherObjs, err := manifest.Parse("chart/mlcd", other)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, c, otherObjs, client.DryRunAll)
	for _, o := range otherObjs {
		if o.GetKind() == "StatefulSet" {
			if r, _, _ := unstructured.NestedInt64(o.Object, "spec", "replicas"); r != 2 || o.GetName() != "mlcd-controller" {
				t.Errorf("with 2 shards and no standby: StatefulSet %s with %d replicas", o.GetName(), r)
			}
		}
	}

	// The controller, API server and registry of `mlcd up`, as the
	// ServiceAccount.
	sa := "system:serviceaccount:" + deploy.Namespace + ":mlcd-controller"
	state := t.TempDir()
	logPath := filepath.Join(state, "up.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	up := exec.Command(mlcdBin, "up", "--kubeconfig", env.Kubeconfig, "--as", sa, "--namespace", deploy.Namespace, "--state-dir", state,
		"--api-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--poll-interval", "5s")
	up.Stdout, up.Stderr = logf, logf
	up.Env = append(os.Environ(), "HOME="+state)
	up.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Process.Signal(os.Interrupt); _ = up.Wait(); logf.Close() })
	ctx := context.Background()
	report := func(apps []v1alpha1.Application) string {
		var b strings.Builder
		for _, a := range apps {
			fmt.Fprintf(&b, "\n  %s: %s/%s", a.Name, a.Status.Sync.Status, a.Status.Health.Status)
			for _, cond := range a.Status.Conditions {
				fmt.Fprintf(&b, " [%s: %s]", cond.Type, cond.Message)
			}
		}
		logs, _ := os.ReadFile(logPath)
		return b.String() + "\nmlcd up: " + string(logs)
	}
	var apps v1alpha1.ApplicationList
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if err := c.List(ctx, &apps, client.InNamespace(deploy.Namespace)); err != nil {
			t.Fatal(err)
		}
		done := len(apps.Items) >= 7
		for _, a := range apps.Items {
			for _, cond := range a.Status.Conditions {
				if strings.Contains(cond.Message, "forbidden") {
					t.Fatalf("the ServiceAccount's RBAC is not enough: %s: %s%s", a.Name, cond.Message, report(apps.Items))
				}
			}
			// The Crossplane claims of `infrastructure` wait for a provider
			// no cluster here runs: Progressing, and so its parent.
			waitsForProvider := a.Name == "infrastructure" || a.Name == "app-of-apps"
			if a.Status.Sync.Status != v1alpha1.SyncStatusSynced || (a.Status.Health.Status != v1alpha1.HealthHealthy && !waitsForProvider) {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the example did not sync as %s within 4m:%s", sa, report(apps.Items))
		}
		time.Sleep(time.Second)
	}
	t.Logf("as %s: %d applications Synced, the model apps Healthy:%s", sa, len(apps.Items), report(apps.Items)[:strings.Index(report(apps.Items), "\nmlcd up:")])

	// A kind the ClusterRole mlcd-apply does not list.
	repo := gittest.New(t)
	repo.Write(map[string]string{"prio/pc.yaml": "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: models-high}\nvalue: 1000\n"})
	repo.Commit("a PriorityClass")
	app := &v1alpha1.Application{}
	if err := yaml.Unmarshal([]byte(fmt.Sprintf("metadata: {name: priority, namespace: %s}\nspec: {project: default, source: {repoURL: %q, targetRevision: main, path: prio}, destination: {server: https://kubernetes.default.svc, namespace: default}, syncPolicy: {automated: {}}}", deploy.Namespace, repo.URL())), app); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	want := `cannot patch resource "priorityclasses"`
	deadline = time.Now().Add(time.Minute)
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(app), app); err != nil {
			t.Fatal(err)
		}
		msg := ""
		for _, cond := range app.Status.Conditions {
			msg += cond.Message
		}
		if strings.Contains(msg, want) && strings.Contains(msg, "ClusterRole mlcd-apply") && app.Status.Sync.Status != v1alpha1.SyncStatusSynced {
			t.Logf("outside the ClusterRole: %s", msg)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no condition saying the RBAC refuses a PriorityClass: %s %v", app.Status.Sync.Status, app.Status.Conditions)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
