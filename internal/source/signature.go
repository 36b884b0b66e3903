package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// ErrUnsigned is returned when a commit carries no signature by an
// allowed key.
var ErrUnsigned = errors.New("not signed by an allowed key")

// Commit returns a fetched commit of the repository at url.
func (c *Cache) Commit(ctx context.Context, url, sha string) (*object.Commit, error) {
	e := c.entry(url)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.repo == nil {
		return nil, fmt.Errorf("repository %s not fetched", redactURL(url))
	}
	return e.repo.CommitObject(plumbing.NewHash(sha))
}

// VerifyCommit checks the commit's signature against allowed keys (key ID
// → public key). A key ID is an OpenPGP long key ID (16 hex digits) with an
// armored public key, or an SSH fingerprint ("SHA256:…") with an
// authorized_keys line. It returns the signing key's ID.
func VerifyCommit(c *object.Commit, allowed map[string]string) (string, error) {
	sig := strings.TrimSpace(c.PGPSignature)
	if sig == "" {
		return "", fmt.Errorf("commit %s is unsigned: %w", c.Hash.String()[:7], ErrUnsigned)
	}
	if strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----") {
		return verifySSH(c, sig, allowed)
	}
	var ring strings.Builder
	for id, key := range allowed {
		if strings.Contains(key, "BEGIN PGP PUBLIC KEY BLOCK") && !strings.HasPrefix(id, "SHA256:") {
			ring.WriteString(key)
			ring.WriteString("\n")
		}
	}
	if ring.Len() == 0 {
		return "", fmt.Errorf("commit %s has an OpenPGP signature but no OpenPGP key is allowed: %w", c.Hash.String()[:7], ErrUnsigned)
	}
	entity, err := c.Verify(ring.String())
	if err != nil {
		return "", fmt.Errorf("commit %s: OpenPGP signature does not verify with an allowed key (%v): %w", c.Hash.String()[:7], err, ErrUnsigned)
	}
	id := entity.PrimaryKey.KeyIdString()
	for allowedID := range allowed {
		if strings.EqualFold(allowedID, id) || strings.HasSuffix(strings.ToUpper(id), strings.ToUpper(allowedID)) {
			return id, nil
		}
	}
	// A subkey signed: the keyring held only allowed keys, so it is one.
	return id, nil
}

func verifySSH(c *object.Commit, armored string, allowed map[string]string) (string, error) {
	sig, err := sshsig.Unarmor([]byte(armored))
	if err != nil {
		return "", fmt.Errorf("commit %s: unreadable SSH signature: %v: %w", c.Hash.String()[:7], err, ErrUnsigned)
	}
	encoded := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(encoded); err != nil {
		return "", err
	}
	r, err := encoded.Reader()
	if err != nil {
		return "", err
	}
	msg, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	for id, key := range allowed {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
		if err != nil {
			continue
		}
		if sshsig.Verify(bytes.NewReader(msg), sig, pub, sig.HashAlgorithm, "git") == nil {
			return id, nil
		}
	}
	return "", fmt.Errorf("commit %s: SSH signature by %s is not from an allowed key: %w", c.Hash.String()[:7], ssh.FingerprintSHA256(sig.PublicKey), ErrUnsigned)
}

// SSHSigner signs Git objects with an SSH key, as `git commit -S` does with
// gpg.format=ssh; it implements go-git's Signer.
type SSHSigner struct{ Signer ssh.Signer }

// Sign returns the armored SSH signature of message in namespace "git".
func (s SSHSigner) Sign(message io.Reader) ([]byte, error) {
	sig, err := sshsig.Sign(message, s.Signer, sshsig.HashSHA512, "git")
	if err != nil {
		return nil, err
	}
	return sshsig.Armor(sig), nil
}

// PGPSigner signs with an OpenPGP entity; it implements go-git's Signer.
type PGPSigner struct{ Entity *openpgp.Entity }

// Sign returns the armored detached signature of message.
func (s PGPSigner) Sign(message io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, s.Entity, message, nil); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// LookupKey finds the public key a signatureKeys ID names among keys (name
// → key): by name, by OpenPGP key ID suffix, or, for "SHA256:" IDs, by the
// fingerprint of an SSH key (ConfigMap keys cannot hold ':').
func LookupKey(keys map[string]string, id string) (string, bool) {
	if k, ok := keys[id]; ok {
		return k, true
	}
	if strings.HasPrefix(id, "SHA256:") {
		for _, k := range keys {
			if pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err == nil && ssh.FingerprintSHA256(pub) == id {
				return k, true
			}
		}
		return "", false
	}
	for name, k := range keys {
		if strings.EqualFold(name, id) || (len(id) >= 8 && strings.HasSuffix(strings.ToUpper(name), strings.ToUpper(id))) {
			return k, true
		}
	}
	return "", false
}

// RevisionMetadata is a commit's author, date and message.
type RevisionMetadata struct {
	Revision string    `json:"revision"`
	Author   string    `json:"author"`
	Date     time.Time `json:"date"`
	Message  string    `json:"message"`
}

// Metadata returns the commit sha of url's cached repository as
// RevisionMetadata.
func (c *Cache) Metadata(ctx context.Context, url, sha string) (*RevisionMetadata, error) {
	commit, err := c.Commit(ctx, url, sha)
	if err != nil {
		return nil, err
	}
	return &RevisionMetadata{Revision: commit.Hash.String(), Author: commit.Author.Name + " <" + commit.Author.Email + ">", Date: commit.Author.When, Message: commit.Message}, nil
}
