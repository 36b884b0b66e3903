package promote

import (
	"context"
	"encoding/base64"
	"fmt"
	"github.com/go-git/go-git/v5"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mlcd-dev/mlcd/internal/source"
)

// Remote is a repository mlcd writes to (revert, promotion, the API's
// rollback): its URL, the credentials of its own repository Secret, and
// mlcd's committer identity.
type Remote struct {
	URL   string
	Creds source.Credentials
	// Name and Email commit (default "mlcd" and "mlcd@localhost"); never
	// the host's user.name.
	Name, Email string
	// Signer, when set, signs the commits (ParseSigner).
	Signer git.Signer
}

// InClone runs fn in a temporary clone of remote at branch ("" or HEAD:
// the default branch), committing as remote's identity; fn pushes what it
// commits. Git runs with the remote's own credentials and nothing of the
// machine's: no system or global configuration during the clone, no
// credential helper at all (a pod, CI or a fresh machine has none; a
// developer's would answer for the wrong repository), HTTP credentials
// sent only to the remote's own scheme, host and port (git's
// http.<url>.extraHeader) and no redirect followed, an SSH key used only
// with the known hosts given. The clone's configuration lives in a
// directory only this process can read and is removed with the clone.
func InClone(ctx context.Context, remote Remote, branch string, fn func(dir string) error) error {
	base, err := os.MkdirTemp("", "mlcd-git-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	dir, aux := filepath.Join(base, "tree"), filepath.Join(base, "aux")
	if err := os.MkdirAll(aux, 0o700); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	config, err := gitConfig(remote, aux)
	if err != nil {
		return err
	}
	empty := filepath.Join(aux, "gitconfig")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		return err
	}
	env := append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+empty, "GIT_ASKPASS=", "SSH_ASKPASS=",
		"GIT_CONFIG_COUNT="+strconv.Itoa(len(config)))
	for i, kv := range config {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	args := []string{"clone", "--quiet", "--no-tags"}
	if branch != "" && branch != "HEAD" {
		args = append(args, "--branch", branch)
	}
	args = append(args, "--", remote.URL, dir)
	cmds := [][]string{args}
	// The same settings in the clone's own configuration, for the
	// commands fn runs there (push, revert, commit): a local empty
	// credential.helper also clears any helper of the user's.
	for _, kv := range config {
		cmds = append(cmds, []string{"-C", dir, "config", "--add", kv[0], kv[1]})
	}
	for _, a := range cmds {
		cmd := exec.CommandContext(ctx, "git", a...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s %s: %s", a[0], source.RedactURL(remote.URL), strings.TrimSpace(string(out)))
		}
	}
	return fn(dir)
}

// gitConfig is what a clone of remote is configured with.
func gitConfig(remote Remote, aux string) ([][2]string, error) {
	name, email := remote.Name, remote.Email
	if name == "" {
		name = "mlcd"
	}
	if email == "" {
		email = "mlcd@localhost"
	}
	cfg := [][2]string{{"credential.helper", ""}, {"user.name", name}, {"user.email", email}, {"http.followRedirects", "false"}, {"core.hooksPath", os.DevNull}}
	c := remote.Creds
	switch {
	case c.SSHPrivateKey != "":
		key := filepath.Join(aux, "id")
		if err := os.WriteFile(key, []byte(strings.TrimSpace(c.SSHPrivateKey)+"\n"), 0o600); err != nil {
			return nil, err
		}
		hostCheck := "-o StrictHostKeyChecking=no -o UserKnownHostsFile=" + os.DevNull
		if !c.InsecureIgnoreHostKey {
			if c.KnownHosts == "" {
				return nil, fmt.Errorf("ssh repository %s: no known host key (set insecure or known hosts)", source.RedactURL(remote.URL))
			}
			kh := filepath.Join(aux, "known_hosts")
			if err := os.WriteFile(kh, []byte(c.KnownHosts), 0o600); err != nil {
				return nil, err
			}
			hostCheck = "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=" + shellQuote(kh)
		}
		cfg = append(cfg, [2]string{"core.sshCommand", "ssh -F " + os.DevNull + " -i " + shellQuote(key) + " -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes " + hostCheck})
	case c.Username != "" || c.Password != "":
		user := c.Username
		if user == "" {
			user = "x-access-token" // token-only credentials, as GitHub and GitLab accept
		}
		token := base64.StdEncoding.EncodeToString([]byte(user + ":" + c.Password))
		cfg = append(cfg, [2]string{"http." + headerScope(remote.URL) + ".extraHeader", "Authorization: Basic " + token})
	}
	return cfg, nil
}

// headerScope is the URL git's http.<url>.* settings match for remote:
// its scheme, host and port (user info dropped), so the header goes to
// that host only.
func headerScope(u string) string {
	r, ok := source.ParseRepoURL(u)
	if !ok || r.Host == "" {
		return source.RedactURL(u)
	}
	host := r.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return r.Scheme + "://" + host + ":" + r.Port + "/"
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
