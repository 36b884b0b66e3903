package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/desired"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// exampleRepo turns the bundled example into a local Git repository in the
// state dir (once) and returns its URL.
func exampleRepo(stateDir string) (string, error) {
	dir, err := filepath.Abs(filepath.Join(stateDir, "repos", "ml-deployments"))
	if err != nil {
		return "", err
	}
	return source.InitFromFS(dir, examples.MLDeployments, "ml-deployments", map[string]string{
		examples.MLDeploymentsRepoURL: "file://" + dir,
	})
}

// repoURLOf accepts a URL or a local path to a repository.
func repoURLOf(repo string) (string, error) {
	if strings.Contains(repo, "://") || strings.HasPrefix(repo, "git@") {
		return repo, nil
	}
	abs, err := filepath.Abs(repo)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("repository %s: %w", repo, err)
	}
	return "file://" + abs, nil
}

// applyRoot applies every manifest found under path at revision of the
// repository — Applications, AppProjects, the root of an app-of-apps —
// creating the namespaces they name. It computes them with the same
// desired-state engine as the controller, which takes over from there.
func applyRoot(ctx context.Context, c *controller.Controller, repoURL, revision, path string, creds source.Credentials) (int, error) {
	engine := c.Reconciler.Engine()
	src := v1alpha1.ApplicationSource{RepoURL: repoURL, TargetRevision: revision, Path: path, Directory: &v1alpha1.ApplicationSourceDirectory{Recurse: true}}
	sha, err := engine.Resolve(ctx, src, creds, true)
	if err != nil {
		return 0, err
	}
	st, err := engine.Build(ctx, desired.Input{Source: src, Revision: sha, Destination: v1alpha1.ApplicationDestination{Namespace: c.Namespace()}})
	if err != nil {
		return 0, err
	}
	applier := c.Reconciler.Applier()
	seen := map[string]bool{}
	for _, o := range st.Objects {
		if ns := o.GetNamespace(); ns != "" && !seen[ns] {
			seen[ns] = true
			if err := applier.EnsureNamespace(ctx, ns); err != nil {
				return 0, err
			}
		}
	}
	if _, err := applier.Apply(ctx, st.Objects, nil); err != nil {
		return 0, err
	}
	return len(st.Objects), nil
}

// exampleVersions are the model versions the bundled example names, with
// offline metrics that pass its gates; v2.3.2 is there to promote.
var exampleVersions = []struct {
	model, version string
	metrics        map[string]float64
}{
	{"fraud-detection", "v2.3.1", map[string]float64{"auc": 0.95, "latency_p99_ms": 41}},
	{"fraud-detection", "v2.3.2", map[string]float64{"auc": 0.955, "latency_p99_ms": 39}},
	{"recommendation", "v1.8.0", map[string]float64{"ndcg_at_10": 0.34}},
}

// seedExampleRegistry registers the example's model versions in the
// embedded registry, once: a model that exists is left alone.
func seedExampleRegistry(ctx context.Context, url string) error {
	c, err := registry.NewClient(registry.ClientOptions{URL: url, Token: os.Getenv("MLFLOW_TRACKING_TOKEN")})
	if err != nil {
		return err
	}
	for _, ev := range exampleVersions {
		if _, err := registry.Resolve(ctx, c, ev.model, ev.version); err == nil {
			continue
		}
		if _, err := c.CreateRegisteredModel(ctx, ev.model, "example model", nil); err != nil && !isAlreadyExists(err) {
			return err
		}
		var ms []registry.Metric
		for k, v := range ev.metrics {
			ms = append(ms, registry.Metric{Key: k, Value: v, Timestamp: time.Now().UnixMilli()})
		}
		runID, err := metricsRun(ctx, c, "mlcd-example", ev.model, ms)
		if err != nil {
			return err
		}
		if _, err := c.CreateModelVersion(ctx, ev.model, registry.CreateVersionOptions{
			Source: "s3://example-models/" + ev.model + "/" + ev.version, RunID: runID,
			Tags: []registry.Tag{{Key: registry.VersionTag, Value: ev.version}},
		}); err != nil {
			return err
		}
	}
	return nil
}
