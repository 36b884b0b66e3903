package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
)

// GrowthResult is the controller's cost at one fleet size of
// ConfigMap-only apps (the cluster's own controllers do no work for them,
// so the figures are mlcd's).
type GrowthResult struct {
	Apps           int     `json:"apps"`
	FloorSyncedS   float64 `json:"floorSyncedSeconds"`
	MlcdSyncedS    float64 `json:"mlcdSyncedSeconds"`
	SyncedRatio    float64 `json:"syncedRatio"`
	CPUSeconds     float64 `json:"mlcdCPUSeconds"`
	CPUPerAppMs    float64 `json:"mlcdCPUMillisecondsPerApp"`
	PeakRSSMiB     float64 `json:"peakRSSMiB"`
	CreatedS       float64 `json:"applicationsCreatedSeconds"`
	RequestsPerApp float64 `json:"apiRequestsPerApp"`
	// Shards > 1: the controller ran as shard 0 of Shards and synced its
	// ShardApps of the fleet (CPU and requests per app are per its apps).
	Shards    int `json:"shards,omitempty"`
	ShardApps int `json:"shardApps,omitempty"`
}

const configMapChart = `apiVersion: v2
name: cm
version: 0.1.0
`

const configMapTemplate = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
  labels: {app.kubernetes.io/instance: {{ .Release.Name | quote }}}
data:
  model: {{ .Values.model | quote }}
  threshold: "0.5"
`

// runGrowth syncs n ConfigMap apps on a fresh cluster: the floor applies
// the n ConfigMaps directly, then mlcd syncs them from n Applications —
// all of them, or (shards > 1) shard 0's share, the controller being that
// shard.
func runGrowth(n, shards int) (GrowthResult, error) {
	res := GrowthResult{Apps: n}
	mine := n
	if shards > 1 {
		res.Shards, mine = shards, 0
		for i := range n {
			if controller.ShardOf("argocd", fmt.Sprintf("model-%d", i), nil, shards) == 0 {
				mine++
			}
		}
		res.ShardApps = mine
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "mlcd-growth-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	logf("growth %d: starting a fresh embedded cluster", n)
	cluster, cfg, c, err := startCluster(ctx, dir)
	if err != nil {
		return res, err
	}
	defer cluster.Stop()
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(filepath.Join(repo, "cm", "templates"), 0o755)
	os.WriteFile(filepath.Join(repo, "cm", "Chart.yaml"), []byte(configMapChart), 0o644)
	os.WriteFile(filepath.Join(repo, "cm", "values.yaml"), []byte("model: fraud-detection\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "cm", "templates", "cm.yaml"), []byte(configMapTemplate), 0o644)
	if err := git(repo, "init", "-q", "-b", "main"); err != nil {
		return res, err
	}
	if err := git(repo, "add", "-A"); err != nil {
		return res, err
	}
	if err := git(repo, "commit", "-qm", "cm"); err != nil {
		return res, err
	}

	// Floor: the same ConfigMaps, applied directly.
	if err := createNamespaces(ctx, c, "floor", n); err != nil {
		return res, err
	}
	start := time.Now()
	err = applyFloor(ctx, c, n, func(i int) client.Object {
		return &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("model-%d", i), Namespace: teamNamespace("floor", i), Labels: map[string]string{"app.kubernetes.io/instance": fmt.Sprintf("model-%d", i)}},
			Data:       map[string]string{"model": "fraud-detection", "threshold": "0.5"}}
	})
	if err != nil {
		return res, err
	}
	res.FloorSyncedS = time.Since(start).Seconds()
	logf("growth %d: floor applied %.1fs", n, res.FloorSyncedS)

	cpu0 := cpuSeconds()
	ctl, counter, err := startController(ctx, cfg, filepath.Join(dir, "cache"), time.Hour, shards)
	if err != nil {
		return res, err
	}
	start = time.Now()
	err = createApps(ctx, c, n, func(i int) *v1alpha1.Application {
		return &v1alpha1.Application{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("model-%d", i), Namespace: "argocd"},
			Spec: v1alpha1.ApplicationSpec{
				Project:     "default",
				Source:      &v1alpha1.ApplicationSource{RepoURL: "file://" + repo, TargetRevision: "main", Path: "cm", Helm: &v1alpha1.ApplicationSourceHelm{}},
				Destination: v1alpha1.ApplicationDestination{Server: v1alpha1.InClusterServer, Namespace: teamNamespace("mlcd", i)},
				SyncPolicy:  &v1alpha1.SyncPolicy{Automated: &v1alpha1.SyncPolicyAutomated{Prune: true, SelfHeal: true}, SyncOptions: []string{"CreateNamespace=true"}},
			},
		}
	})
	if err != nil {
		return res, err
	}
	res.CreatedS = time.Since(start).Seconds()
	reader := ctl.Manager.GetClient()
	var peak float64
	for {
		var list v1alpha1.ApplicationList
		if err := reader.List(ctx, &list, client.InNamespace("argocd"), client.UnsafeDisableDeepCopy); err != nil {
			return res, err
		}
		synced := 0
		for _, a := range list.Items {
			if a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
				synced++
			}
		}
		peak = max(peak, rssMiB())
		if synced == mine {
			break
		}
		if time.Since(start) > 40*time.Minute {
			return res, fmt.Errorf("growth %d: %d Synced after 40m", n, synced)
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.MlcdSyncedS = time.Since(start).Seconds()
	res.SyncedRatio = res.MlcdSyncedS / res.FloorSyncedS
	res.CPUSeconds = cpuSeconds() - cpu0
	res.CPUPerAppMs = res.CPUSeconds / float64(mine) * 1000
	res.PeakRSSMiB = peak
	res.RequestsPerApp = float64(counter.requests.Load()) / float64(mine)
	logf("growth %d: requests per app: %s", n, counter.breakdown(mine))
	logf("growth %d: mlcd synced %.1fs (%.2f× floor), %.1f CPU s (%.1f ms/app), peak RSS %.0f MiB", n, res.MlcdSyncedS, res.SyncedRatio, res.CPUSeconds, res.CPUPerAppMs, res.PeakRSSMiB)
	return res, nil
}
