package promote_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxcd/gitkit"
	"github.com/fluxcd/pkg/gittestserver"
	"golang.org/x/crypto/ssh"

	"github.com/mlcd-dev/mlcd/internal/promote"
	"github.com/mlcd-dev/mlcd/internal/source"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// TestInCloneOverSSH: a write over SSH uses the repository Secret's key and
// known hosts and nothing of the machine (empty HOME, no ssh config or
// agent): the push lands; a server whose host key is not the known one is
// refused before anything is sent.
func TestInCloneOverSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, "none"))
	t.Setenv("SSH_AUTH_SOCK", "")

	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, _ := ssh.NewSignerFromKey(hostPriv)
	clientPub, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	clientSSHPub, _ := ssh.NewPublicKey(clientPub)
	block, _ := ssh.MarshalPrivateKey(clientPriv, "mlcd")
	clientKey := string(pem.EncodeToMemory(block))

	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(srv.Root())
	cfg := &ssh.ServerConfig{}
	cfg.AddHostKey(hostSigner)
	srv.KeyDir(t.TempDir()).WithSSHConfig(cfg)
	// Only mlcd's key is accepted.
	srv.PublicKeyLookupFunc(func(content string) (*gitkit.PublicKey, error) {
		if strings.TrimSpace(content) != strings.TrimSpace(string(ssh.MarshalAuthorizedKey(clientSSHPub))) {
			return nil, fmt.Errorf("unknown key")
		}
		return &gitkit.PublicKey{Id: "mlcd"}, nil
	})
	if err := srv.ListenSSH(); err != nil {
		t.Fatal(err)
	}
	go srv.StartSSH()
	defer srv.StopSSH()

	// The repository: a bare copy of a work tree with one commit.
	work := gittest.New(t)
	work.Write(map[string]string{"a.txt": "1"}).Commit("one")
	if out, err := exec.Command("git", "clone", "-q", "--bare", work.Dir, filepath.Join(srv.Root(), "repo.git")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	url := srv.SSHAddress() + "/repo.git"
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.SSHAddress(), "ssh://git@"))
	knownHosts := fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(hostSigner.PublicKey()))

	ctx := context.Background()
	remote := promote.Remote{URL: url, Creds: source.Credentials{SSHPrivateKey: clientKey, KnownHosts: knownHosts}}
	err = promote.InClone(ctx, remote, "main", func(dir string) error {
		if err := os.WriteFile(filepath.Join(dir, "b.txt"), []byte("2"), 0o644); err != nil {
			return err
		}
		for _, a := range [][]string{{"add", "b.txt"}, {"commit", "-q", "-m", "two"}, {"push", "-q", "origin", "main"}} {
			if out, err := exec.Command("git", append([]string{"-C", dir}, a...)...).CombinedOutput(); err != nil {
				return fmt.Errorf("git %s: %v %s", a[0], err, out)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("write over SSH: %v", err)
	}
	if out, _ := exec.Command("git", "-C", filepath.Join(srv.Root(), "repo.git"), "log", "-1", "--format=%s %cn", "main").CombinedOutput(); strings.TrimSpace(string(out)) != "two mlcd" {
		t.Errorf("the remote's main: %s", out)
	}

	// Another host key: refused, nothing cloned.
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(otherPriv)
	remote.Creds.KnownHosts = fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(otherSigner.PublicKey()))
	err = promote.InClone(ctx, remote, "main", func(string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "Host key verification failed") {
		t.Errorf("a server with another host key: %v", err)
	}
}
