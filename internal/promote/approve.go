package promote

import (
	"context"
	"fmt"
	"os"

	"github.com/go-git/go-git/v5"
)

// ApproveOptions describe an approval commit.
type ApproveOptions struct {
	Push
	// KeyFile is an armored OpenPGP private key or an OpenSSH private key
	// (unencrypted); its public half must be in the project's
	// signatureKeys for the approval to count.
	KeyFile string
	// Note is added to the commit message.
	Note string
}

// ApproveResult says what was committed.
type ApproveResult struct {
	Commit, Approves, Branch, Signer, PushCommand string
	Pushed                                        bool
}

// Approve adds an empty commit signed with the approver's key, with an
// "Approved-by:" trailer, on top of the current branch: a tech lead
// approves the change without editing files, and the controller syncs only
// signed revisions of projects that require them.
func Approve(ctx context.Context, o ApproveOptions) (*ApproveResult, error) {
	repo, wt, err := openClean(o.Dir)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	signer, signerName, err := ParseSigner(data)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", o.KeyFile, err)
	}
	head, err := repo.Head()
	if err != nil {
		return nil, err
	}
	prev, err := repo.CommitObject(head.Hash())
	if err != nil {
		return nil, err
	}
	who := author(repo)
	msg := fmt.Sprintf("Approve %s\n\n", firstLine(prev.Message))
	if o.Note != "" {
		msg += o.Note + "\n\n"
	}
	msg += fmt.Sprintf("Approves: %s\nApproved-by: %s <%s>\n", head.Hash(), who.Name, who.Email)
	h, err := wt.Commit(msg, &git.CommitOptions{Author: who, Committer: who, AllowEmptyCommits: true, Signer: signer})
	if err != nil {
		return nil, fmt.Errorf("commit approval: %w", err)
	}
	res := &ApproveResult{Commit: h.String(), Approves: head.Hash().String(), Branch: head.Name().Short(), Signer: signerName}
	res.PushCommand, res.Pushed, err = o.push(ctx, wt.Filesystem.Root(), head.Name().Short(), "the approval")
	return res, err
}
