package cli_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/examples"
	"github.com/mlcd-dev/mlcd/internal/cli"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestDiffCommand: mlcd diff on the bundled example (its app-of-apps and
// the applications under argocd/) — a production version bump lists one
// app, --exit-code exits 1, -o json and --markdown carry the same app, and
// a broken template exits 2 naming the app.
func TestDiffCommand(t *testing.T) {
	repo := gittest.New(t)
	repo.CopyFS(examples.MLDeployments, "ml-deployments", ".", nil)
	base := repo.Commit("example")
	gittest.Git(t, repo.Dir, "remote", "add", "origin", "https://github.com/company/ml-deployments.git")
	head := repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": "model:\n  version: v2.4.0\n  replicas: 5\nautoscaling:\n  minReplicas: 5\n  maxReplicas: 20\n"}).Commit("bump")
	args := []string{"diff", "--repo", repo.Dir, "--base", base, "--head", head, "--path", "argocd"}
	out, err := run(args...)
	if err != nil || !strings.Contains(out, "fraud-detection-production: changed") || strings.Contains(out, "fraud-detection-staging") || !strings.Contains(out, "+        image: ") {
		t.Fatalf("mlcd diff: %v\n%s", err, out)
	}
	var exit *cli.ExitError
	if _, err := run(append(args, "--exit-code")...); !errors.As(err, &exit) || exit.Code != 1 {
		t.Errorf("--exit-code with a change: %v", err)
	}
	out, _ = run(append(args, "-o", "json")...)
	var res struct {
		Apps []struct{ App, Status string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Apps) != 1 {
		t.Errorf("-o json: %v %s", err, out)
	}
	if out, _ = run(append(args, "--markdown")...); !strings.Contains(out, "<details><summary><b>argocd/fraud-detection-production</b> changed</summary>") {
		t.Errorf("--markdown:\n%s", out)
	}
	broken := repo.Write(map[string]string{"models/recommendation/templates/broken.yaml": "{{ .Values.nope.deeper }}\n"}).Commit("broken")
	out, err = run("diff", "--repo", repo.Dir, "--base", base, "--head", broken, "--path", "argocd")
	if !errors.As(err, &exit) || exit.Code != 2 || !strings.Contains(out, "recommendation-") || !strings.Contains(out, "does not render") {
		t.Errorf("a broken template: %v\n%s", err, out)
	}
}
