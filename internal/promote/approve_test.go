package promote_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/go-git/go-git/v5"

	"github.com/mlcd-dev/mlcd/internal/promote"
	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
	"github.com/mlcd-dev/mlcd/internal/source"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

func TestApproveWithOpenPGP(t *testing.T) {
	_, work := setup(t)
	e, err := openpgp.NewEntity("Tech Lead", "", "lead@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	var priv, pub bytes.Buffer
	w, _ := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, _ = armor.Encode(&pub, openpgp.PublicKeyType, nil)
	e.Serialize(w)
	w.Close()
	keyFile := filepath.Join(t.TempDir(), "lead.asc")
	os.WriteFile(keyFile, priv.Bytes(), 0o600)

	res, err := promote.Approve(context.Background(), promote.ApproveOptions{Push: promote.Push{Dir: work}, KeyFile: keyFile, Note: "LGTM"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pushed || res.Signer != e.PrimaryKey.KeyIdString() {
		t.Fatalf("result %+v", res)
	}
	repo, _ := git.PlainOpen(work)
	c, err := repo.CommitObject(plumbingHash(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Message, "Approved-by: Tech Lead <lead@example.com>") || !strings.Contains(c.Message, "Approves: "+res.Approves) {
		t.Errorf("message:\n%s", c.Message)
	}
	id, err := source.VerifyCommit(c, map[string]string{e.PrimaryKey.KeyIdString(): pub.String()})
	if err != nil || id != e.PrimaryKey.KeyIdString() {
		t.Fatalf("verify: %s %v", id, err)
	}
	parent, _ := c.Parent(0)
	if _, err := source.VerifyCommit(parent, map[string]string{e.PrimaryKey.KeyIdString(): pub.String()}); !errors.Is(err, source.ErrUnsigned) {
		t.Fatalf("unsigned parent: %v", err)
	}
}

func TestCheckRequiresSignedApproval(t *testing.T) {
	origin, work := setup(t)
	_ = origin
	keyFile, fp, pub := gittest.SSHKey(t)
	// The production app's project requires signatures.
	os.WriteFile(filepath.Join(work, "argocd/projects.yaml"), []byte("apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: default, namespace: argocd}\nspec:\n  sourceRepos: ['*']\n  signatureKeys: [{keyID: \""+fp+"\"}]\n"), 0o644)
	gittest.Git(t, work, "add", ".")
	gittest.Git(t, work, "commit", "-qm", "require signatures")
	gittest.Git(t, work, "push", "-q", "origin", "main")
	if _, err := promote.Promote(context.Background(), promote.Options{Push: promote.Push{Dir: work, NoPush: true}, Model: "fraud-detection", Version: "v2.3.2", Env: "production"}); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t, registry.ServerOptions{})
	register(t, reg.Client, "v2.3.1", 0.95, "production")
	register(t, reg.Client, "v2.3.2", 0.955, "staging")
	keys := map[string]string{"lead.pub": pub}
	run := func() string {
		res := check(t, reg.Client, work)
		repo, _ := git.PlainOpen(work)
		if err := promote.CheckSignatures(repo, "HEAD", "origin/main", res, keys); err != nil {
			t.Fatal(err)
		}
		return failedNames(res)
	}
	if got := run(); got != promote.CheckSigned {
		t.Fatalf("unsigned production change: failed %q, want %q", got, promote.CheckSigned)
	}
	if _, err := promote.Approve(context.Background(), promote.ApproveOptions{Push: promote.Push{Dir: work, NoPush: true}, KeyFile: keyFile}); err != nil {
		t.Fatal(err)
	}
	if got := run(); got != "" {
		t.Fatalf("after approval: failed %q", got)
	}
}
