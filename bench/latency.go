package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/source"
	"github.com/mlcd-dev/mlcd/internal/webhook"
)

// commitToLive measures P2 and P3 among the n apps already synced: one
// more app with its own directory (models/p2) has its values file bumped
// in 20 commits; each is announced by a GitHub push webhook to mlcd's
// handler, and the clock stops when the Deployment in the cluster carries
// the new version. Renders per commit must be 1 (only that app's path
// changed; the other n apps render nothing).
func commitToLive(ctx context.Context, res *Result, c client.Client, ctl *controller.Controller, repo string) error {
	if err := source.CopyFS(os.DirFS(repo), "models/fraud-detection", filepath.Join(repo, "models", "p2"), nil); err != nil {
		return err
	}
	if err := git(repo, "add", "-A"); err != nil {
		return err
	}
	if err := git(repo, "commit", "-qm", "p2"); err != nil {
		return err
	}
	app := application(repo, 0, 1)
	app.Name, app.Spec.Source.Path = "p2", "models/p2"
	app.Spec.Source.Helm.Parameters = params(1_000_000)
	app.Spec.Destination.Namespace = "p2"
	if err := c.Create(ctx, app); err != nil {
		return err
	}
	hook := httptest.NewServer(webhook.New(webhook.Options{Client: c, Namespace: "argocd"}))
	defer hook.Close()
	push := func(file string) error {
		payload := fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"html_url":"file://%[1]s","clone_url":"file://%[1]s","default_branch":"main"},"commits":[{"modified":[%[2]q]}]}`, repo, file)
		req, _ := http.NewRequestWithContext(ctx, "POST", hook.URL, bytes.NewReader([]byte(payload)))
		req.Header.Set("X-GitHub-Event", "push")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("webhook answered %d", resp.StatusCode)
		}
		return nil
	}
	// The controller fetched before the p2 commit: the push announces it.
	if err := push("models/p2/Chart.yaml"); err != nil {
		return err
	}
	live := p2Live(ctx, c)
	if err := until(ctx, 2*time.Minute, func() bool { return live("v2.3.1") }); err != nil {
		return fmt.Errorf("p2 app did not sync: %w", err)
	}
	logf("P2: 20 commits to models/p2 among %d apps, each announced by a webhook", res.Apps)
	var took []time.Duration
	var renders int64
	for k := 1; k <= 20; k++ {
		time.Sleep(1100 * time.Millisecond) // the webhook refreshes an app at most once a second
		version := fmt.Sprintf("v9.0.%d", k)
		before := ctl.Reconciler.Renders()
		if err := bumpP2(repo, version); err != nil {
			return err
		}
		start := time.Now()
		if err := push("models/p2/values-production.yaml"); err != nil {
			return err
		}
		if err := until(ctx, 30*time.Second, func() bool { return live(version) }); err != nil {
			return fmt.Errorf("commit %s not live: %w", version, err)
		}
		took = append(took, time.Since(start))
		time.Sleep(200 * time.Millisecond) // let the status write land before counting renders
		renders += ctl.Reconciler.Renders() - before
	}
	slices.Sort(took)
	res.CommitToLiveP50S = took[len(took)/2].Seconds()
	res.CommitToLiveP99S = took[len(took)-1].Seconds() // of 20: the slowest
	res.RendersPerCommit = float64(renders) / float64(len(took))
	logf("P2: commit → live p50 %.2fs, p99 %.2fs; P3: %.1f renders per commit", res.CommitToLiveP50S, res.CommitToLiveP99S, res.RendersPerCommit)
	return nil
}

// pollToLive is P2 with polling only: commits no webhook announces, each
// live within the poll interval plus a second.
func pollToLive(ctx context.Context, res *Result, c client.Client, ctl *controller.Controller, repo string, n int, poll time.Duration) error {
	const commits = 5
	// The restarted controller compares every app once (its memory of
	// in-sync apps went with the process): wait until it is at rest.
	if err := until(ctx, 10*time.Minute, func() bool { return ctl.Reconciler.Renders() > int64(n) }); err != nil {
		return fmt.Errorf("the restarted controller did not compare every app: %w", err)
	}
	for last := int64(-1); last != ctl.Reconciler.Renders(); {
		last = ctl.Reconciler.Renders()
		time.Sleep(2 * time.Second)
	}
	logf("P2, polling only: the controller restarted to poll every %s; %d commits to models/p2 no webhook announces", poll, commits)
	live := p2Live(ctx, c)
	var took []time.Duration
	renders := ctl.Reconciler.Renders()
	for k := 1; k <= commits; k++ {
		version := fmt.Sprintf("v9.1.%d", k)
		if err := bumpP2(repo, version); err != nil {
			return err
		}
		start := time.Now()
		if err := until(ctx, 2*poll+30*time.Second, func() bool { return live(version) }); err != nil {
			return fmt.Errorf("commit %s not live by polling: %w", version, err)
		}
		took = append(took, time.Since(start))
	}
	time.Sleep(poll) // every app has polled the last commit
	slices.Sort(took)
	res.PollS, res.PollP50S, res.PollMaxS = poll.Seconds(), took[len(took)/2].Seconds(), took[len(took)-1].Seconds()
	res.PollRendersPerCommit = float64(ctl.Reconciler.Renders()-renders) / commits
	logf("P2, polling only: commit → live p50 %.1fs, max %.1fs (target ≤ %.0fs); P3: %.1f renders per commit", res.PollP50S, res.PollMaxS, (poll + time.Second).Seconds(), res.PollRendersPerCommit)
	return nil
}

// p2Live reports whether the p2 app's Deployment runs a version.
func p2Live(ctx context.Context, c client.Client) func(version string) bool {
	deployment := types.NamespacedName{Namespace: "p2", Name: "model-1000000"}
	return func(version string) bool {
		var d appsv1.Deployment
		return c.Get(ctx, deployment, &d) == nil && d.Annotations["mlcd.io/model-version"] == version
	}
}

// bumpP2 commits a new model version into the p2 app's values file.
func bumpP2(repo, version string) error {
	values := fmt.Sprintf("model:\n  version: %s\n  replicas: 5\nautoscaling:\n  minReplicas: 5\n  maxReplicas: 20\n", version)
	if err := os.WriteFile(filepath.Join(repo, "models", "p2", "values-production.yaml"), []byte(values), 0o644); err != nil {
		return err
	}
	return git(repo, "commit", "-qam", version)
}

func until(ctx context.Context, bound time.Duration, cond func() bool) error {
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", bound)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func git(dir string, args ...string) error {
	out, err := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=bench", "-c", "user.email=bench@example.com"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("git %v: %s", args, out)
	}
	return nil
}
