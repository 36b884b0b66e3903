package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/render"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// The benchmark's fleet: the model repository, its Applications and
// namespaces, and what "available" means for them.

// createApps creates n Applications by server-side apply, 8 at a time,
// as `kubectl apply --server-side` of a directory (or `mlcd up`, or an
// app-of-apps) would. Not by POST: kube-apiserver holds every POST of a
// custom resource for 2 s after its CRD is established (for HA servers
// that may not have seen it yet), and mlcd has just installed the CRDs —
// that hold would be counted as mlcd's time.
func createApps(ctx context.Context, c client.Client, n int, app func(i int) *v1alpha1.Application) error {
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			a := app(i)
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(a)
			if err != nil {
				return err
			}
			obj := &unstructured.Unstructured{Object: u}
			unstructured.RemoveNestedField(obj.Object, "status")
			unstructured.RemoveNestedField(obj.Object, "metadata", "creationTimestamp")
			obj.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Application"))
			return c.Patch(ctx, obj, client.Apply, client.FieldOwner("kubectl"))
		})
	}
	return g.Wait()
}

// modelRepo is a Git repository with the example's model chart and the
// shared chart it depends on.
func modelRepo(dir string) (string, error) {
	for _, p := range []struct{ from, to string }{{"ml-deployments/models/fraud-detection", "models/fraud-detection"}, {"ml-deployments/base", "base"}} {
		if err := source.CopyFS(examples.MLDeployments, p.from, filepath.Join(dir, p.to), nil); err != nil {
			return "", err
		}
	}
	os.Remove(filepath.Join(dir, "models/fraud-detection/mlcd.yaml"))
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "models"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("git %v: %s", args, out)
		}
	}
	return dir, nil
}

// params are each app's Helm parameters (small pods: the simulated nodes
// would otherwise run out of room long before mlcd does).
func params(i int) []v1alpha1.HelmParameter {
	return []v1alpha1.HelmParameter{
		{Name: "model.name", Value: fmt.Sprintf("model-%d", i)}, {Name: "model.replicas", Value: "1"},
		{Name: "autoscaling.minReplicas", Value: "1"}, {Name: "resources.requests.cpu", Value: "10m"}, {Name: "resources.requests.memory", Value: "16Mi"},
	}
}

func teamNamespace(prefix string, i int) string { return fmt.Sprintf("%s-t%02d", prefix, i/50) }

// createNamespaces creates the prefix's team namespaces and waits until
// each has its default ServiceAccount (no pod can be created there before
// kube-controller-manager makes it), so every contender starts from ready
// namespaces.
func createNamespaces(ctx context.Context, c client.Client, prefix string, n int) error {
	for t := 0; t*50 < n; t++ {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamNamespace(prefix, t*50)}}
		if err := c.Create(ctx, ns); err != nil {
			return err
		}
	}
	for t := 0; t*50 < n; t++ {
		key := types.NamespacedName{Namespace: teamNamespace(prefix, t*50), Name: "default"}
		if err := until(ctx, time.Minute, func() bool { return c.Get(ctx, key, &corev1.ServiceAccount{}) == nil }); err != nil {
			return fmt.Errorf("namespace %s has no default ServiceAccount: %w", key.Namespace, err)
		}
	}
	return nil
}

// renderAll renders every app's objects as mlcd would (same chart,
// values and parameters), for the floor.
func renderAll(repo string, n int, prefix string) ([]*unstructured.Unstructured, error) {
	r := render.New()
	var out []*unstructured.Unstructured
	for i := range n {
		ns := teamNamespace(prefix, i)
		res, err := r.Render(render.Input{Root: repo, Revision: "bench", AppName: fmt.Sprintf("model-%d", i), Namespace: ns,
			Source: v1alpha1.ApplicationSource{Path: "models/fraud-detection", Helm: &v1alpha1.ApplicationSourceHelm{ValueFiles: []string{"values-production.yaml"}, Parameters: params(i)}}})
		if err != nil {
			return nil, err
		}
		for _, o := range res.Objects {
			o.SetNamespace(ns)
			out = append(out, o)
		}
	}
	return out, nil
}

func application(repo string, i, n int) *v1alpha1.Application {
	return &v1alpha1.Application{
		// Path-scoped, as in a monorepo: a push refreshes only the apps
		// whose directory it touches.
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("model-%d", i), Namespace: "argocd", Annotations: map[string]string{v1alpha1.ManifestGeneratePathsAnnotation: "."}},
		Spec: v1alpha1.ApplicationSpec{
			Project: "default",
			Source: &v1alpha1.ApplicationSource{RepoURL: "file://" + repo, TargetRevision: "main", Path: "models/fraud-detection",
				Helm: &v1alpha1.ApplicationSourceHelm{ValueFiles: []string{"values-production.yaml"}, Parameters: params(i)}},
			Destination: v1alpha1.ApplicationDestination{Server: v1alpha1.InClusterServer, Namespace: teamNamespace("mlcd", i)},
			SyncPolicy:  &v1alpha1.SyncPolicy{Automated: &v1alpha1.SyncPolicyAutomated{Prune: true, SelfHeal: true}, SyncOptions: []string{"CreateNamespace=true"}},
		},
	}
}

// waitAvailable waits until every Deployment of the prefix's namespaces
// is Available.
func waitAvailable(ctx context.Context, c client.Client, prefix string, n int, start time.Time) error {
	for {
		available := 0
		for t := 0; t*50 < n; t++ {
			var list appsv1.DeploymentList
			if err := c.List(ctx, &list, client.InNamespace(teamNamespace(prefix, t*50))); err != nil {
				return err
			}
			for _, d := range list.Items {
				for _, cond := range d.Status.Conditions {
					if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue && d.Status.ObservedGeneration >= d.Generation {
						available++
					}
				}
			}
		}
		if available == n {
			return nil
		}
		if time.Since(start) > 20*time.Minute {
			return fmt.Errorf("%s: %d of %d Deployments available after 20m", prefix, available, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
