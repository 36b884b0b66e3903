package faults

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// rounds is how many kill rounds TestKilledMidSync runs (MLCD_FAULT_ROUNDS
// overrides the 20).
func rounds() int {
	if n, err := strconv.Atoi(os.Getenv("MLCD_FAULT_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// convergeBound is the time every app must reach the head revision after
// a fault clears: the poll interval (3 s), a backoff step and the sync of
// 50 small apps on the 2-core reference machine.
const convergeBound = 60 * time.Second

// TestKilledMidSync: the controller is SIGKILLed at a random point of a
// 50-app sync (each generation changes every app's data and replaces one
// object per app, so syncs apply and prune), 20 rounds. After each kill no
// object desired in every revision is missing and no bystander changed;
// in the end every app converges to the head, its inventory exactly that
// generation's objects.
func TestKilledMidSync(t *testing.T) {
	w := newWorld(t, 50)
	w.start()
	w.converge(w.repo.Head(), convergeBound)
	var sha string
	n := rounds()
	for g := 1; g <= n; g++ {
		sha = w.commitGeneration(g)
		w.start()
		// A random point: mid-fetch, mid-apply, mid-prune or mid-status-write.
		time.Sleep(time.Duration(200+rand.IntN(2500)) * time.Millisecond)
		w.kill()
		if lost := w.stableLost(); len(lost) > 0 {
			t.Fatalf("round %d: killed controller left %d desired objects deleted: %v", g, len(lost), first(lost, 5))
		}
		w.checkBystanders()
	}
	w.start()
	took := w.converge(sha, convergeBound)
	lost, extra := w.checkInventory(n)
	w.checkBystanders()
	t.Logf("fault: SIGKILL mid-sync; rounds %d; objects lost %d; wrongly deleted 0 (checked after every kill); stale left %d; converged in %s", n, lost, extra, took.Round(time.Millisecond))
}

// TestGitOutage: the Git server goes down, then answers 500s, then 10 s
// per request; meanwhile apps keep what runs (nothing pruned, nothing
// changed), say the repository is unreachable, and the controller does
// not pile requests up; back to normal, they converge to a commit made
// during the outage.
func TestGitOutage(t *testing.T) {
	w := newWorld(t, 10)
	w.start()
	w.converge(w.repo.Head(), convergeBound)
	for _, mode := range []string{"down", "500", "slow"} {
		w.git.set(mode)
		sha := w.commitGeneration(map[string]int{"down": 1, "500": 2, "slow": 3}[mode])
		peakBefore := w.git.peak.Load()
		w.git.peak.Store(0)
		began := time.Now()
		deadline := time.Now().Add(20 * time.Second)
		told := false
		for time.Now().Before(deadline) && !told {
			told = true
			for i := range w.apps {
				if !hasCondition(w.app(i), v1alpha1.ConditionComparisonError, "") {
					told = false
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
		if mode != "slow" && !told {
			t.Errorf("Git %s: not every app says so within 20 s (e.g. %+v)", mode, w.app(0).Status.Conditions)
		}
		if lost := w.stableLost(); len(lost) > 0 {
			t.Fatalf("Git %s: %d objects deleted: %v", mode, len(lost), first(lost, 5))
		}
		for i := range w.apps {
			if a := w.app(i); a.Status.Sync.Revision == sha {
				t.Errorf("Git %s: app-%d claims %.7s, which it cannot have fetched", mode, i, sha)
			}
		}
		// One repository: fetches are shared, so requests in flight stay
		// few however many apps wait on it.
		if peak := w.git.peak.Load(); peak > 8 {
			t.Errorf("Git %s: %d requests in flight at once (before: %d)", mode, peak, peakBefore)
		}
		lasted := time.Since(began)
		w.git.set("")
		took := w.converge(sha, convergeBound)
		w.checkBystanders()
		lost, extra := w.checkInventory(map[string]int{"down": 1, "500": 2, "slow": 3}[mode])
		t.Logf("fault: Git %s for %s; objects lost %d; stale left %d; converged %s after it cleared; peak requests in flight %d", mode, lasted.Round(time.Second), lost, extra, took.Round(time.Millisecond), w.git.peak.Load())
	}
}

// TestForcePushAndDeletedTag: a force-push that drops the synced commit
// moves the apps to the new head (the dropped commit's objects pruned, the
// rest kept); an app tracking a tag that is deleted keeps what runs and
// says the revision is gone.
func TestForcePushAndDeletedTag(t *testing.T) {
	w := newWorld(t, 5)
	w.start()
	w.converge(w.repo.Head(), convergeBound)
	dropped := w.commitGeneration(1)
	w.converge(dropped, convergeBound)
	gittest.Git(t, w.repo.Dir, "reset", "-q", "--hard", "HEAD~1")
	head := w.commitGeneration(2)
	took := w.converge(head, convergeBound)
	if lost, extra := w.checkInventory(2); lost+extra > 0 {
		t.Fatalf("after the force-push: %d lost, %d stale", lost, extra)
	}
	w.checkBystanders()
	t.Logf("fault: force-push dropping the synced commit; objects lost 0; converged in %s", took.Round(time.Millisecond))

	// A tag.
	w.repo.Tag("v1")
	w.patchAll(func(a *v1alpha1.Application) { a.Spec.Source.TargetRevision = "v1" })
	w.converge(head, convergeBound)
	gittest.Git(t, w.repo.Dir, "tag", "-d", "v1")
	for i := range w.apps {
		w.refresh(i)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !hasCondition(w.app(0), v1alpha1.ConditionComparisonError, "v1") {
		if time.Now().After(deadline) {
			t.Fatalf("a deleted tag is not reported: %+v", w.app(0).Status.Conditions)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if lost := w.stableLost(); len(lost) > 0 {
		t.Fatalf("deleted tag: %d objects deleted", len(lost))
	}
	if lost, _ := w.checkInventory(2); lost > 0 {
		t.Fatalf("deleted tag: %d inventory objects lost", lost)
	}
	if a := w.app(0); a.Status.Sync.Status == v1alpha1.SyncStatusSynced {
		t.Errorf("an app whose tag is gone says Synced")
	}
}

// TestConcurrentCommits: 10 commits in 2 s to every app's path: each app
// ends at the last, and no intermediate revision is in its history twice.
func TestConcurrentCommits(t *testing.T) {
	w := newWorld(t, 5)
	w.start()
	w.converge(w.repo.Head(), convergeBound)
	var sha string
	for g := 1; g <= 10; g++ {
		sha = w.commitGeneration(g)
		for i := range w.apps {
			w.refresh(i) // as a webhook would, per push
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := w.converge(sha, convergeBound)
	if lost, extra := w.checkInventory(10); lost+extra > 0 {
		t.Fatalf("%d lost, %d stale", lost, extra)
	}
	for i := range w.apps {
		seen := map[string]int{}
		for _, h := range w.app(i).Status.History {
			seen[h.Revision]++
			if seen[h.Revision] > 1 {
				t.Errorf("app-%d applied %.7s twice: %v", i, h.Revision, w.app(i).Status.History)
			}
		}
	}
	w.checkBystanders()
	t.Logf("fault: 10 commits in 2 s; objects lost 0; converged to the last in %s", took.Round(time.Millisecond))
}

func hasCondition(a *v1alpha1.Application, typ, contains string) bool {
	for _, c := range a.Status.Conditions {
		if c.Type == typ && strings.Contains(c.Message, contains) {
			return true
		}
	}
	return false
}
