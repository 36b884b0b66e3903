package faults

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
)

// TestTwoShards: 200 apps split between two controller processes
// (--shards 2): while only shard 0 runs, exactly its apps sync and shard
// 1's are untouched (no status, no object); with shard 1 — two replicas
// under leader election — every app syncs. Killing shard 1's leader lets
// its standby take over within the lease duration and sync a new commit,
// no revision applied twice.
func TestTwoShards(t *testing.T) {
	const n = 200
	w := newWorld(t, n)
	mine := map[int]bool{}
	for i := range n {
		mine[i] = controller.ShardOf(w.ns, fmt.Sprintf("app-%d", i), nil, 2) == 0
	}
	w.startProcess("--shards", "2", "--shard", "0")
	head := w.repo.Head()
	deadline := time.Now().Add(2 * convergeBound)
	for {
		synced, others := 0, 0
		for i := range n {
			a := w.app(i)
			switch {
			case mine[i] && a.Status.Sync.Status == v1alpha1.SyncStatusSynced && a.Status.Sync.Revision == head:
				synced++
			case !mine[i] && a.Status.ReconciledAt != nil:
				others++
			}
		}
		if others > 0 {
			t.Fatalf("shard 0 reconciled %d of shard 1's apps", others)
		}
		want := 0
		for _, m := range mine {
			if m {
				want++
			}
		}
		if synced == want {
			t.Logf("shard 0 synced its %d apps; shard 1's %d untouched", want, n-want)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shard 0 synced %d of its %d apps", synced, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a poll interval: still nothing of shard 1
	for i := range n {
		if mine[i] {
			continue
		}
		if a := w.app(i); a.Status.ReconciledAt != nil {
			t.Fatalf("app-%d (shard 1) was reconciled by shard 0", i)
		}
		var cm corev1.ConfigMap
		if err := w.c.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: fmt.Sprintf("app-%d-stable", i)}, &cm); !apierrors.IsNotFound(err) {
			t.Fatalf("app-%d (shard 1) has objects while only shard 0 runs: %v", i, err)
		}
	}

	// Shard 1: a leader and a standby.
	const leaseDuration = 6 * time.Second
	retryPeriod := leaseDuration * 2 / 15
	leader := w.startProcess("--shards", "2", "--shard", "1", "--leader-elect", "--lease-duration", leaseDuration.String())
	lease := &coordinationv1.Lease{}
	leaseKey := types.NamespacedName{Namespace: w.ns, Name: controller.LeaseName(1, 2)}
	deadline = time.Now().Add(30 * time.Second)
	for w.c.Get(context.Background(), leaseKey, lease) != nil || lease.Spec.HolderIdentity == nil {
		if time.Now().After(deadline) {
			t.Fatal("shard 1's first replica never took its Lease")
		}
		time.Sleep(200 * time.Millisecond)
	}
	firstHolder := *lease.Spec.HolderIdentity
	w.startProcess("--shards", "2", "--shard", "1", "--leader-elect", "--lease-duration", leaseDuration.String())
	w.converge(head, 2*convergeBound)

	// Kill the leader mid-flight; a new commit must still land.
	sha := w.commitGeneration(1)
	if err := leader.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// The standby may take the Lease a lease duration after it saw the
	// last renewal; it looks every retry period, stretched by client-go's
	// jitter factor of 1.2 (so up to 2.2 retry periods): it sees the last
	// renewal at most one such wait late and tries at most one more after
	// expiry, plus a second for the API server.
	bound := leaseDuration + 2*time.Duration(2.2*float64(retryPeriod)) + time.Second
	for {
		if w.c.Get(context.Background(), leaseKey, lease) == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != firstHolder {
			break
		}
		if time.Since(killed) > bound {
			t.Fatalf("the standby did not take shard 1's Lease within %s (lease %s + 2 jittered retries of %s + 1 s)", bound, leaseDuration, retryPeriod)
		}
		time.Sleep(200 * time.Millisecond)
	}
	handover := time.Since(killed)
	w.converge(sha, 2*convergeBound)
	took := time.Since(killed)
	lost, extra := w.checkInventory(1)
	for i := range n {
		seen := map[string]bool{}
		for _, h := range w.app(i).Status.History {
			if seen[h.Revision] {
				t.Errorf("app-%d: %.7s applied twice", i, h.Revision)
			}
			seen[h.Revision] = true
		}
	}
	w.checkBystanders()
	// Each app's objects carry its shard's label (a shard caches only those).
	for i := range n {
		var cm corev1.ConfigMap
		if err := w.c.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: fmt.Sprintf("app-%d-stable", i)}, &cm); err != nil {
			t.Fatalf("app-%d: %v", i, err)
		}
		want := "1"
		if mine[i] {
			want = "0"
		}
		if got := cm.Labels[controller.ShardAnnotation]; got != want {
			t.Errorf("app-%d's ConfigMap is labelled for shard %q, want %q", i, got, want)
		}
	}
	t.Logf("fault: shard 1's leader SIGKILLed; standby took the Lease after %s (lease %s); all %d apps at the new commit %s after the kill; objects lost %d; stale left %d", handover.Round(time.Millisecond), leaseDuration, n, took.Round(time.Millisecond), lost, extra)
}
