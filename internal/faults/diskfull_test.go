package faults

import (
	"crypto/rand"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// TestGitCacheDiskFull: the controller's cache sits on a 4 MiB tmpfs; a
// commit adds an incompressible 8 MiB file, so fetching it fails with
// ENOSPC. The apps keep what runs (nothing pruned, nothing changed), say
// the disk is full, and leave no half-written checkout; once the
// filesystem grows they converge to that commit with its exact content.
func TestGitCacheDiskFull(t *testing.T) {
	w := newWorld(t, 10)
	cache := filepath.Join(w.dir, "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", cache).CombinedOutput(); err != nil {
		// Mounting needs root with CAP_SYS_ADMIN (CI and the reference
		// machines have it).
		t.Skipf("cannot mount a tmpfs for the cache: %v: %s", err, out)
	}
	t.Cleanup(func() { w.stop(); _ = exec.Command("umount", "-l", cache).Run() })
	w.start()
	w.converge(w.repo.Head(), convergeBound)

	blob := make([]byte, 8<<20)
	rand.Read(blob)
	w.repo.Write(map[string]string{"data/features.parquet": string(blob)})
	sha := w.commitGeneration(1)
	for i := range w.apps {
		w.refresh(i)
	}
	// Tells: every app (one repository) says why, and stays as it runs.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < w.apps; {
		a := w.app(i)
		if hasCondition(a, v1alpha1.ConditionComparisonError, "is out of disk space") && a.Status.Sync.Status != v1alpha1.SyncStatusSynced {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("app-%d does not say the disk is full: sync %s, conditions %v", i, a.Status.Sync.Status, a.Status.Conditions)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if lost := w.stableLost(); len(lost) > 0 {
		t.Fatalf("a full disk deleted %v", first(lost, 5))
	}
	if lost, extra := w.checkInventory(0); lost+extra > 0 {
		t.Fatalf("a full disk changed what runs: %d lost, %d extra", lost, extra)
	}
	w.checkBystanders()

	// The disk grows; nothing half-written is reused.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", cache).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	started := time.Now()
	for i := range w.apps {
		w.refresh(i)
	}
	w.converge(sha, convergeBound)
	lost, extra := w.checkInventory(1)
	w.checkBystanders()
	filepath.WalkDir(filepath.Join(cache, "git", "trees"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasSuffix(p, ".tmp") {
			t.Errorf("a half-written checkout was left: %s", p)
		}
		return nil
	})
	t.Logf("fault: Git cache disk full (4 MiB tmpfs, 8 MiB commit); objects lost %d; wrongly deleted 0; stale left %d; converged %s after the disk grew", lost, extra, time.Since(started).Round(time.Millisecond))
}
