package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/repocreds"
	"github.com/mlcd-dev/mlcd/internal/source"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// The deployment repository is private (smart HTTP, basic auth for fetch
// and push) and the process has no Git configuration and an empty HOME,
// as in a pod: POST …/rollback pushes its revert with the repository
// Secret's credentials, and the password is in no answer. An app whose
// repository its project does not allow gets nothing pushed.
func TestRollbackToAPrivateRepository(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, "none"))
	reg := registrytest.Start(t, registry.ServerOptions{})
	e := startWithRegistry(t, reg.Client)
	for _, v := range []string{"v2.3.1", "v2.3.2"} {
		registrytest.Register(t, reg.Client, "fraud-detection", v, map[string]float64{"auc": 0.95})
	}
	const password = "private-repo-password-42"
	repo := fraudRepo(t, "fd", "v2.3.1", "")
	gittest.Git(t, repo.Dir, "config", "receive.denyCurrentBranch", "updateInstead")
	url := repo.ServeHTTP("mlcd", password)
	if err := e.c.Create(context.Background(), controller.RepositorySecret(e.ns, url, source.Credentials{Username: "mlcd", Password: password})); err != nil {
		t.Fatal(err)
	}
	dest := e.ns + "-fd"
	e.createFraudApp("fd", url, dest)
	e.waitApp("fd", "Synced+Healthy at v2.3.1", synced("v2.3.1"))
	bump := repo.Write(map[string]string{"models/fraud-detection/values-production.yaml": fraudValues("v2.3.2")}).Commit("promote fraud-detection v2.3.2")
	e.mlcd(adminToken, "app", "refresh", "fd")
	e.waitApp("fd", "Synced+Healthy at v2.3.2", synced("v2.3.2"))

	// The host refuses the push (a pre-receive hook, as branch protection
	// does): the answer names the remote's reason, nothing lands.
	hook := filepath.Join(repo.Dir, ".git", "hooks", "pre-receive")
	_ = os.MkdirAll(filepath.Dir(hook), 0o755)
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho 'protected branch: reverts need a review' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := gittest.Git(t, repo.Dir, "rev-parse", "main")
	code, body := e.call(http.MethodPost, "/api/v1/applications/fd/rollback", adminToken, strings.NewReader(`{"reason": "latency"}`))
	if code != http.StatusConflict || !strings.Contains(body, "protected branch: reverts need a review") || strings.Contains(body, password) {
		t.Errorf("a refused push: %d %s", code, body)
	}
	if now := gittest.Git(t, repo.Dir, "rev-parse", "main"); now != before {
		t.Fatal("a refused push moved the branch")
	}
	os.Remove(hook)
	// mlcd signs its commits with the key of the mlcd-signing-key Secret.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "mlcd")
	if err := e.c.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: repocreds.SigningSecret, Namespace: e.ns}, Data: map[string][]byte{"signingKey": pem.EncodeToMemory(block)}}); err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	code, body = e.call(http.MethodPost, "/api/v1/applications/fd/rollback", adminToken, strings.NewReader(`{"reason": "latency"}`))
	if code != http.StatusOK || strings.Contains(body, password) {
		t.Fatalf("rollback: %d %s", code, body)
	}
	msg := gittest.Git(t, repo.Dir, "log", "-1", "--format=%B", "main")
	if !strings.Contains(msg, "This reverts commit "+bump) {
		t.Fatalf("the revert is not on the private remote:\n%s", msg)
	}
	if author := gittest.Git(t, repo.Dir, "log", "-1", "--format=%cn <%ce>", "main"); author != "mlcd <mlcd@localhost>" {
		t.Errorf("committed as %q, want mlcd's own identity", author)
	}
	g, err := git.PlainOpen(repo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	headHash, _ := g.ResolveRevision("main")
	revert, err := g.CommitObject(*headHash)
	if err != nil {
		t.Fatal(err)
	}
	fp := ssh.FingerprintSHA256(sshPub)
	if id, err := source.VerifyCommit(revert, map[string]string{fp: string(ssh.MarshalAuthorizedKey(sshPub))}); err != nil || id != fp {
		t.Errorf("the revert is not signed with mlcd's key: %q %v", id, err)
	}
	e.waitApp("fd", "Synced+Healthy at v2.3.1 again", synced("v2.3.1"))
	for _, path := range []string{"/api/v1/applications/fd", "/api/v1/applications/fd/events", "/api/v1/applications/fd/lineage"} {
		if _, body := e.call(http.MethodGet, path, adminToken, nil); strings.Contains(body, password) {
			t.Errorf("%s answers the repository password", path)
		}
	}
	if s := fmt.Sprint(e.getApp("fd").Status); strings.Contains(s, password) {
		t.Error("the app's status holds the repository password")
	}

	// An app whose project does not allow the repository: nothing pushed.
	p := `apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: elsewhere, namespace: %s}
spec:
  sourceRepos: [https://git.example/only-this.git]
  destinations: [{server: "*", namespace: "*"}]
`
	createYAML(t, e, fmt.Sprintf(p, e.ns))
	e.createFraudAppIn("escape", "elsewhere", url, dest+"-x")
	head := gittest.Git(t, repo.Dir, "rev-parse", "main")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, _ := e.call(http.MethodGet, "/api/v1/applications/escape", adminToken, nil); code == http.StatusOK {
			break // the server reads a cache
		}
	}
	code, body = e.call(http.MethodPost, "/api/v1/applications/escape/rollback", adminToken, strings.NewReader(`{}`))
	if code != http.StatusForbidden || !strings.Contains(body, "not permitted") {
		t.Errorf("rollback of an app whose repository its project does not allow: %d %s", code, body)
	}
	if now := gittest.Git(t, repo.Dir, "rev-parse", "main"); now != head {
		t.Errorf("a commit was pushed for an app outside its project: %s", gittest.Git(t, repo.Dir, "log", "-1", "--format=%s", "main"))
	}
}
