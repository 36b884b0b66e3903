package controller_test

import (
	"fmt"
	"testing"
	"time"
)

// TestPollWakesTouchedApps: when one app's poll (here a refresh of m1)
// fetches a commit that touches m2's directory, m2 syncs it at once —
// not at its own poll a minute later — and m3, untouched, is left to its
// poll.
func TestPollWakesTouchedApps(t *testing.T) {
	h := start(t, time.Minute)
	repo := modelsRepo(t, 3)
	first := repo.Commit("three models")
	for m := 1; m <= 3; m++ {
		name := fmt.Sprintf("m%d", m)
		h.namespaceGone(t, h.ns+"-"+name)
		h.create(modelApp, map[string]string{"{{NAME}}": name, "{{REPO}}": repo.URL(), "{{MODEL}}": name, "{{ENV}}": "staging", "{{DEST}}": h.ns + "-" + name})
	}
	for m := 1; m <= 3; m++ {
		h.waitSynced(fmt.Sprintf("m%d", m), first)
	}
	repo.Write(map[string]string{"models/m2/values-staging.yaml": "model:\n  version: v2\n  replicas: 1\n"})
	second := repo.Commit("bump m2")
	h.refresh("m1") // m1's reconcile fetches: a poll
	start := time.Now()
	h.eventually(15*time.Second, "m2 at the new commit", func() (bool, string) {
		rev := h.app("m2").Status.Sync.Revision
		return rev == second, shortSHA(rev)
	})
	t.Logf("m2 synced the commit m1's fetch found %s later", time.Since(start).Round(10*time.Millisecond))
	h.waitSynced("m2", second)
	if rev := h.app("m3").Status.Sync.Revision; rev != first {
		t.Errorf("m3, untouched by the commit, reconciled at %s before its poll", shortSHA(rev))
	}
}
