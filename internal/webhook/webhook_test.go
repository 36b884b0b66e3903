package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/source"
)

func TestRepoIdentityMatchesPushURLs(t *testing.T) {
	same := []string{
		"https://github.com/Company/ml-deployments.git",
		"https://github.com/company/ml-deployments",
		"git@github.com:company/ml-deployments.git",
		"ssh://git@github.com/company/ml-deployments",
		"https://user@github.com/company/ml-deployments/",
		"ssh://git@github.com:22/company/ml-deployments.git",
	}
	for _, u := range same {
		if got := source.RepoIdentity(u); got != "github.com/company/ml-deployments" {
			t.Errorf("%s -> %s", u, got)
		}
	}
	if source.RepoIdentity("https://github.com/company/other") == source.RepoIdentity(same[0]) {
		t.Error("different repositories compare equal")
	}
}

func app(t *testing.T, doc string) *v1alpha1.Application {
	a := &v1alpha1.Application{}
	if err := yaml.Unmarshal([]byte(doc), a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMatches(t *testing.T) {
	push := &Push{URLs: []string{"https://github.com/company/ml-deployments", "git@github.com:company/ml-deployments.git"}, Branch: "main", DefaultBranch: "main", Changed: []string{"models/fraud-detection/values-production.yaml"}}
	cases := []struct {
		name, doc string
		want      bool
	}{
		{"same repo and branch", `{spec: {source: {repoURL: "https://github.com/company/ml-deployments.git", targetRevision: main, path: models/recommendation}}}`, true},
		{"HEAD is the default branch", `{spec: {source: {repoURL: "git@github.com:company/ml-deployments.git", targetRevision: HEAD, path: x}}}`, true},
		{"other branch", `{spec: {source: {repoURL: "https://github.com/company/ml-deployments", targetRevision: release, path: x}}}`, false},
		{"other repo", `{spec: {source: {repoURL: "https://github.com/company/other", targetRevision: main, path: x}}}`, false},
		{"paths match", `{metadata: {annotations: {argocd.argoproj.io/manifest-generate-paths: "."}}, spec: {source: {repoURL: "https://github.com/company/ml-deployments", targetRevision: main, path: models/fraud-detection}}}`, true},
		{"paths do not match", `{metadata: {annotations: {argocd.argoproj.io/manifest-generate-paths: "."}}, spec: {source: {repoURL: "https://github.com/company/ml-deployments", targetRevision: main, path: models/recommendation}}}`, false},
		{"absolute path matches", `{metadata: {annotations: {argocd.argoproj.io/manifest-generate-paths: "/models"}}, spec: {source: {repoURL: "https://github.com/company/ml-deployments", targetRevision: main, path: argocd}}}`, true},
		{"relative ../ path", `{metadata: {annotations: {argocd.argoproj.io/manifest-generate-paths: "../fraud-detection"}}, spec: {source: {repoURL: "https://github.com/company/ml-deployments", targetRevision: main, path: models/recommendation}}}`, true},
	}
	for _, c := range cases {
		if got := Matches(app(t, c.doc), push); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestParseVerifies(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/main","repository":{"html_url":"https://github.com/company/ml","default_branch":"main"},"commits":[{"modified":["a/b.yaml"]}]}`)
	secrets := map[string]string{"webhook.github.secret": "s3cret"}
	hd := http.Header{}
	hd.Set("X-GitHub-Event", "push")
	var he *httpError
	if _, err := parse(hd, body, secrets); !errors.As(err, &he) || he.status != 401 {
		t.Fatalf("unsigned: %v", err)
	}
	hd.Set("X-Hub-Signature-256", sign("wrong", body))
	if _, err := parse(hd, body, secrets); !errors.As(err, &he) || he.status != 401 {
		t.Fatalf("wrongly signed: %v", err)
	}
	hd.Set("X-Hub-Signature-256", sign("s3cret", body))
	p, err := parse(hd, body, secrets)
	if err != nil || p.Branch != "main" || len(p.Changed) != 1 || p.URLs[0] != "https://github.com/company/ml" {
		t.Fatalf("signed: %+v %v", p, err)
	}
	// Without a secret configured, unsigned pushes are accepted (Argo CD).
	hd.Del("X-Hub-Signature-256")
	if _, err := parse(hd, body, nil); err != nil {
		t.Fatalf("no secret configured: %v", err)
	}
	// GitLab's token.
	gl := http.Header{}
	gl.Set("X-Gitlab-Event", "Push Hook")
	gl.Set("X-Gitlab-Token", "nope")
	if _, err := parse(gl, []byte(`{}`), map[string]string{"webhook.gitlab.secret": "tok"}); !errors.As(err, &he) || he.status != 401 {
		t.Fatalf("gitlab wrong token: %v", err)
	}
	// A generic push may not bypass configured provider secrets.
	if _, err := parse(http.Header{}, []byte(`{"repoURL":"https://github.com/company/ml","branch":"main"}`), secrets); !errors.As(err, &he) || he.status != 401 {
		t.Fatalf("unsigned generic push: %v", err)
	}
	// A ping is no push.
	ping := http.Header{}
	ping.Set("X-GitHub-Event", "ping")
	if p, err := parse(ping, []byte(`{}`), nil); p != nil || err != nil {
		t.Fatalf("ping: %v %v", p, err)
	}
}

// TestFloodIsThrottled: however many pushes arrive, one app is refreshed
// at most once per MinInterval.
func TestFloodIsThrottled(t *testing.T) {
	h := New(Options{MinInterval: time.Second})
	allowed := 0
	start := time.Now()
	for range 1000 {
		if h.allow("argocd/fraud") {
			allowed++
		}
	}
	if limit := int(time.Since(start)/time.Second) + 1; allowed > limit {
		t.Fatalf("%d refreshes of one app in %s", allowed, time.Since(start))
	}
	if !h.allow("argocd/other") {
		t.Fatal("another app was throttled by the first one's flood")
	}
}

func TestVerifyMLflow(t *testing.T) {
	body := []byte(`{"entity":"model_version","action":"created","data":{"name":"fraud-detection","version":"3"}}`)
	now := time.Unix(1_800_000_000, 0)
	ts := "1800000000"
	hd := http.Header{}
	hd.Set(registry.HeaderDeliveryID, "d-1")
	hd.Set(registry.HeaderTimestamp, ts)
	hd.Set(registry.HeaderSignature, registry.SignWebhook("sec", "d-1", ts, body))
	if err := verifyMLflow("sec", hd, body, now); err != nil {
		t.Fatalf("valid delivery: %v", err)
	}
	for name, mutate := range map[string]func(http.Header){
		"wrong secret": func(h http.Header) { h.Set(registry.HeaderSignature, registry.SignWebhook("other", "d-1", ts, body)) },
		"other id":     func(h http.Header) { h.Set(registry.HeaderDeliveryID, "d-2") },
		"stale":        func(h http.Header) { h.Set(registry.HeaderTimestamp, "1799990000") },
		"unsigned":     func(h http.Header) { h.Del(registry.HeaderSignature) },
	} {
		h := hd.Clone()
		mutate(h)
		if err := verifyMLflow("sec", h, body, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A signed registry delivery replayed within its freshness window is
// refused by its id.
func TestMLflowDeliveryOnce(t *testing.T) {
	h := New(Options{})
	if !h.firstDelivery("d-1") {
		t.Fatal("first delivery refused")
	}
	if h.firstDelivery("d-1") {
		t.Fatal("a replayed delivery id was accepted")
	}
	if !h.firstDelivery("d-2") {
		t.Fatal("another delivery refused")
	}
}

// With only GitHub's secret, pushes in another provider's shape are
// unsigned and refused (an attacker would otherwise pick the provider
// without a secret).
func TestEveryProviderMustSignOnceAnySecretIsSet(t *testing.T) {
	secrets := map[string]string{"webhook.github.secret": "s3cret"}
	for name, hdr := range map[string][2]string{"gitlab": {"X-Gitlab-Event", "Push Hook"}, "bitbucket": {"X-Event-Key", "repo:refs_changed"}} {
		hd := http.Header{}
		hd.Set(hdr[0], hdr[1])
		var he *httpError
		if _, err := parse(hd, []byte(`{}`), secrets); !errors.As(err, &he) || he.status != 401 {
			t.Errorf("%s unsigned: %v", name, err)
		}
	}
}
