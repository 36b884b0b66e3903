package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
)

// FuzzPush: the provider payload parsers never panic on any body, and a
// GitHub push with a configured secret is accepted only when signed.
func FuzzPush(f *testing.F) {
	for _, s := range []string{
		`{"ref":"refs/heads/main","repository":{"html_url":"https://github.com/c/r","clone_url":"https://github.com/c/r.git","default_branch":"main"},"commits":[{"modified":["a"],"added":["b"],"removed":["c"]}]}`,
		`{"object_kind":"push","ref":"refs/heads/main","project":{"web_url":"https://gitlab.com/c/r","git_http_url":"https://gitlab.com/c/r.git"},"commits":[]}`,
		`{"eventKey":"repo:refs_changed","changes":[{"ref":{"id":"refs/heads/main"}}],"repository":{"links":{"clone":[{"href":"https://bb/scm/c/r.git"}]}}}`,
		`{"repoURL":"https://x/y","branch":"main","paths":["a"]}`, `[]`, `null`, `{"commits":[null]}`, `{"ref":5}`, ``,
	} {
		f.Add(s, "github")
		f.Add(s, "gitlab")
		f.Add(s, "bitbucket")
		f.Add(s, "generic")
	}
	f.Fuzz(func(t *testing.T, body, provider string) {
		hd := http.Header{}
		switch provider {
		case "github":
			hd.Set("X-GitHub-Event", "push")
		case "gitlab":
			hd.Set("X-Gitlab-Event", "Push Hook")
		case "bitbucket":
			hd.Set("X-Event-Key", "repo:refs_changed")
		}
		_, _ = parse(hd, []byte(body), nil)
		if provider == "github" {
			secrets := map[string]string{"webhook.github.secret": "s3cr3t"}
			if p, err := parse(hd, []byte(body), secrets); err == nil && p != nil {
				t.Fatalf("an unsigned GitHub push was accepted: %q", body)
			}
			mac := hmac.New(sha256.New, []byte("s3cr3t"))
			mac.Write([]byte(body))
			hd.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
			_, _ = parse(hd, []byte(body), secrets)
		}
	})
}
