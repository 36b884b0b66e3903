package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// repoCredFlags are the credentials of `mlcd up --repo`, read from files
// so they never appear in a process list or shell history.
type repoCredFlags struct {
	username, passwordFile, tokenFile, sshKeyFile, knownHostsFile string
}

func (f *repoCredFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.username, "repo-username", "", "user name for HTTPS basic auth with --repo-password-file (default \"git\" with --repo-token-file)")
	cmd.Flags().StringVar(&f.passwordFile, "repo-password-file", "", "file holding the HTTPS password of --repo")
	cmd.Flags().StringVar(&f.tokenFile, "repo-token-file", "", "file holding an HTTPS access token for --repo")
	cmd.Flags().StringVar(&f.sshKeyFile, "repo-ssh-key-file", "", "file holding the SSH private key for an ssh:// or git@ --repo")
	cmd.Flags().StringVar(&f.knownHostsFile, "repo-known-hosts-file", "", "known_hosts file to verify the SSH host of --repo")
}

// credentials reads the files; zero Credentials when none is given.
func (f *repoCredFlags) credentials() (source.Credentials, error) {
	var c source.Credentials
	read := func(name, file string) (string, error) {
		if file == "" {
			return "", nil
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return string(data), nil
	}
	var err error
	if c.Password, err = read("--repo-password-file", f.passwordFile); err != nil {
		return c, err
	}
	c.Password = strings.TrimRight(c.Password, "\r\n")
	if f.tokenFile != "" {
		if c.Password != "" {
			return c, fmt.Errorf("--repo-token-file and --repo-password-file exclude each other")
		}
		tok, err := read("--repo-token-file", f.tokenFile)
		if err != nil {
			return c, err
		}
		c.Password = strings.TrimSpace(tok)
		c.Username = "git"
	}
	if f.username != "" {
		c.Username = f.username
	}
	if c.Password != "" && c.Username == "" {
		return c, fmt.Errorf("--repo-password-file needs --repo-username")
	}
	if c.SSHPrivateKey, err = read("--repo-ssh-key-file", f.sshKeyFile); err != nil {
		return c, err
	}
	if c.KnownHosts, err = read("--repo-known-hosts-file", f.knownHostsFile); err != nil {
		return c, err
	}
	return c, nil
}

// storeRepoSecret writes creds as an Argo CD repository Secret for url in
// namespace, so the controller reads them as it reads any repository's.
func storeRepoSecret(ctx context.Context, c client.Client, namespace, url string, creds source.Credentials) error {
	if creds == (source.Credentials{}) {
		return nil
	}
	s := controller.RepositorySecret(namespace, url, creds)
	err := c.Create(ctx, s)
	if apierrors.IsAlreadyExists(err) {
		existing := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(s), existing); err != nil {
			return err
		}
		s.ResourceVersion = existing.ResourceVersion
		err = c.Update(ctx, s)
	}
	if err != nil {
		return fmt.Errorf("store the credentials of %s as a repository Secret: %w", url, err)
	}
	return nil
}
