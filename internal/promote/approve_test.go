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
	"github.com/mlcd-dev/mlcd/internal/source"
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

	res, err := promote.Approve(context.Background(), promote.ApproveOptions{Dir: work, KeyFile: keyFile, Note: "LGTM"})
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
