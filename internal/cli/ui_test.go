package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/internal/cli"
)

// syncBuffer is an io.Writer read while it is written.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestWebUI drives Debian's chromium (headless) against `mlcd up` on the
// bundled example: the list shows the example apps Synced/Healthy with
// their model versions; an app page shows its tree and history; a
// rollback from the UI makes the revert commit and the history entry; the
// model page shows the versions per environment. Screenshots of each page
// go to a directory the test prints.
func TestWebUI(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (.ci/run installs Debian's chromium package)")
		}
		t.Skip("chromium not installed: apt-get install chromium")
	}
	if testing.Short() {
		t.Skip("starts mlcd up")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	state := filepath.Join(t.TempDir(), "state")
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	root := cli.NewRoot()
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs([]string{"up", "--state-dir", state, "--api-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--poll-interval", "5s", "--pod-ready-delay", "100ms"})
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Log("mlcd up did not stop within 30s")
		}
	})
	apiRE := regexp.MustCompile(`API server: (http://127\.0\.0\.1:\d+)`)
	var api string
	deadline := time.Now().Add(5 * time.Minute)
	for api == "" {
		if m := apiRE.FindStringSubmatch(out.String()); m != nil {
			api = m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("mlcd up ended: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mlcd up did not serve the API within 5m:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var tokens struct {
		Tokens []struct{ Token string }
	}
	data, err := os.ReadFile(filepath.Join(state, "api-tokens.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &tokens); err != nil || len(tokens.Tokens) == 0 {
		t.Fatalf("tokens file: %v", err)
	}
	token := tokens.Tokens[0].Token
	getApp := func(name string) map[string]any {
		req, _ := http.NewRequest(http.MethodGet, api+"/api/v1/applications/"+name, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var a map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&a)
		return a
	}
	status := func(a map[string]any) (string, string) {
		st, _ := a["status"].(map[string]any)
		sync, _ := st["sync"].(map[string]any)
		health, _ := st["health"].(map[string]any)
		s, _ := sync["status"].(string)
		h, _ := health["status"].(string)
		return s, h
	}
	waitApp := func(name, what string, ok func(map[string]any) bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			a := getApp(name)
			if a != nil && ok(a) {
				return
			}
			if time.Now().After(deadline) {
				s, h := status(a)
				t.Fatalf("%s %s: not reached (%s/%s)\n%s", name, what, s, h, out.String())
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	healthy := func(a map[string]any) bool { s, h := status(a); return s == "Synced" && h == "Healthy" }
	for _, app := range []string{"fraud-detection-staging", "fraud-detection-production"} {
		waitApp(app, "Synced and Healthy", healthy)
	}
	// The seed's infrastructure: Crossplane resources synced, shown
	// Progressing (no provider reports them Ready here), not hidden.
	waitApp("infrastructure", "Synced and Progressing", func(a map[string]any) bool {
		s, h := status(a)
		return s == "Synced" && h == "Progressing"
	})

	shots := filepath.Join(os.TempDir(), fmt.Sprintf("mlcd-ui-screenshots-%d", time.Now().Unix()))
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.Flag("window-size", "1280,900"))
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// waitText waits until the page's text contains every want.
	waitText := func(what string, want ...string) string {
		t.Helper()
		var text string
		deadline := time.Now().Add(60 * time.Second)
		for {
			text, _ = chromedp.Run(bctx, chromedp.Evaluate[string]("document.body.innerText"))
			missing := ""
			for _, w := range want {
				if !strings.Contains(text, w) {
					missing = w
				}
			}
			if missing == "" {
				return text
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: page lacks %q:\n%s", what, missing, text)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Sign in and see the list.
	if err := chromedp.Do(bctx, chromedp.Navigate(api+"/")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.ID("token")), chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("sign-in"))); err != nil {
		t.Fatal(err)
	}
	list := waitText("app list", "fraud-detection-production", "fraud-detection-staging", "Fleet by model", "v2.3.1", "● live")
	for _, row := range strings.Split(list, "\n") {
		if strings.HasPrefix(row, "fraud-detection-production") && !(strings.Contains(row, "Synced") && strings.Contains(row, "Healthy") && strings.Contains(row, "v2.3.1")) {
			t.Errorf("list row: %q", row)
		}
	}
	shot("01-applications.png")

	// Promote v2.3.2 to staging in Git (as `mlcd model promote` would, merged).
	repo := filepath.Join(state, "repos", "ml-deployments")
	head, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	initial := strings.TrimSpace(string(head))
	values := filepath.Join(repo, "models/fraud-detection/values-staging.yaml")
	v, _ := os.ReadFile(values)
	os.WriteFile(values, bytes.Replace(v, []byte("version: v2.3.1"), []byte("version: v2.3.2"), 1), 0o644)
	for _, args := range [][]string{{"add", "-A"}, {"-c", "user.name=dev", "-c", "user.email=dev@example.com", "commit", "-qm", "Promote fraud-detection v2.3.2 to staging"}} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %s", args, out)
		}
	}
	version := func(want string) func(map[string]any) bool {
		return func(a map[string]any) bool {
			md, _ := a["metadata"].(map[string]any)
			ann, _ := md["annotations"].(map[string]any)
			return healthy(a) && ann["mlcd.io/model-version"] == want
		}
	}
	// The list follows the stream: staging's new version shows without a
	// reload (the app pages do not poll).
	waitText("app list after the promotion", "v2.3.2")
	waitApp("fraud-detection-staging", "at v2.3.2", version("v2.3.2"))

	// The app page: tree and history (with the commit message).
	if err := chromedp.Do(bctx, chromedp.Navigate(api+"/#/apps/argocd/fraud-detection-staging")); err != nil {
		t.Fatal(err)
	}
	waitText("app page", "Resources", "apps/Deployment", "fraud-detection", "History", "Promote fraud-detection v2.3.2 to staging", "Lineage")
	shot("02-application.png")

	// Roll back from the UI.
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.ID("rollback")), chromedp.WaitVisible(chromedp.ID("rollback-reason")),
		chromedp.SendKeys(chromedp.ID("rollback-reason"), "latency regression seen in staging"), chromedp.Click(chromedp.ID("rollback-confirm"))); err != nil {
		t.Fatal(err)
	}
	shot("03-rollback.png")
	waitApp("fraud-detection-staging", "back at v2.3.1", version("v2.3.1"))
	msg, err := exec.Command("git", "-C", repo, "log", "-1", "--format=%H%n%B").CombinedOutput()
	if err != nil || !strings.Contains(string(msg), "This reverts commit") || !strings.Contains(string(msg), "latency regression seen in staging") {
		t.Fatalf("head after the UI rollback: %s %v", msg, err)
	}
	revert := strings.SplitN(string(msg), "\n", 2)[0]
	a := getApp("fraud-detection-staging")
	hist, _ := a["status"].(map[string]any)["history"].([]any)
	if last, _ := hist[len(hist)-1].(map[string]any); last["revision"] != revert {
		t.Errorf("last history entry %v, want the revert %s", last["revision"], revert)
	}
	// Every sync is in the history, the first one (at start, while the
	// app-of-apps writes the same Application) included.
	if first, _ := hist[0].(map[string]any); len(hist) != 3 || first["revision"] != initial {
		t.Errorf("history %v; want the initial sync %s, the promotion and the revert", hist, initial)
	}
	waitText("history after the rollback", "Revert \"Promote fraud-detection v2.3.2 to staging\"")
	shot("04-after-rollback.png")

	// The model page: versions per environment and the registry's versions.
	if err := chromedp.Do(bctx, chromedp.Navigate(api+"/#/models/fraud-detection")); err != nil {
		t.Fatal(err)
	}
	waitText("model page", "Environments", "production", "staging", "Registry versions", "v2.3.2", "auc")
	shot("05-model.png")
}
