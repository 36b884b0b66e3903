package promote

import (
	"fmt"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"

	gitsource "github.com/mlcd-dev/mlcd/internal/source"
)

// ParseSigner reads an armored OpenPGP private key or an unencrypted
// OpenSSH private key into a commit signer, with the key's id (OpenPGP key
// ID or SSH SHA256 fingerprint, as a project's signatureKeys name it).
func ParseSigner(data []byte) (git.Signer, string, error) {
	if strings.Contains(string(data), "BEGIN PGP PRIVATE KEY BLOCK") {
		ring, err := openpgp.ReadArmoredKeyRing(strings.NewReader(string(data)))
		if err != nil || len(ring) == 0 {
			return nil, "", fmt.Errorf("not a readable OpenPGP private key")
		}
		return gitsource.PGPSigner{Entity: ring[0]}, ring[0].PrimaryKey.KeyIdString(), nil
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, "", fmt.Errorf("neither an OpenPGP nor an unencrypted OpenSSH private key: %v", err)
	}
	return gitsource.SSHSigner{Signer: s}, ssh.FingerprintSHA256(s.PublicKey()), nil
}

// sign replaces the HEAD commit of the work tree at root with the same
// commit signed by p.Signer (the commits a workflow made with the git
// binary, a revert say) and returns the new HEAD; without a signer it
// returns HEAD as it is.
func (p Push) sign(root string) (string, error) {
	repo, err := git.PlainOpenWithOptions(root, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return "", err
	}
	head, err := repo.Head()
	if err != nil {
		return "", err
	}
	if p.Signer == nil {
		return head.Hash().String(), nil
	}
	c, err := repo.CommitObject(head.Hash())
	if err != nil {
		return "", err
	}
	signed := &object.Commit{Author: c.Author, Committer: c.Committer, Message: c.Message, TreeHash: c.TreeHash, ParentHashes: c.ParentHashes, Encoding: c.Encoding}
	unsigned := repo.Storer.NewEncodedObject()
	if err := signed.EncodeWithoutSignature(unsigned); err != nil {
		return "", err
	}
	r, err := unsigned.Reader()
	if err != nil {
		return "", err
	}
	sig, err := p.Signer.Sign(r)
	r.Close()
	if err != nil {
		return "", fmt.Errorf("sign the commit: %w", err)
	}
	signed.PGPSignature = string(sig)
	obj := repo.Storer.NewEncodedObject()
	if err := signed.Encode(obj); err != nil {
		return "", err
	}
	h, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return "", err
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(head.Name(), h)); err != nil {
		return "", err
	}
	return h.String(), nil
}
