package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/mlcd-dev/mlcd/internal/manifest"
)

// Credentials authenticate to a repository. Zero means anonymous.
type Credentials struct {
	Username, Password string
	SSHPrivateKey      string
	// InsecureIgnoreHostKey skips SSH host-key checks (Argo CD's "insecure").
	InsecureIgnoreHostKey bool
	// KnownHosts is an OpenSSH known_hosts text used to verify SSH hosts.
	KnownHosts string
}

// Options configure a Cache.
type Options struct {
	// Dir holds bare repositories and checked-out trees.
	Dir string
	// MaxAge is how long a fetch is reused before Resolve fetches again
	// (the poll interval). Default 3m.
	MaxAge time.Duration
	// OnRequest, when set, is told of every request to a remote: the
	// repository (credentials redacted), "ls-remote" or "fetch", and how
	// long it took (Argo CD's argocd_git_request_* metrics).
	OnRequest func(repo, requestType string, took time.Duration, err error)
	// MaxFiles and MaxBytes bound one checkout (a tree of more files or
	// bytes fails with an error naming the bound; other repositories are
	// unaffected). Defaults DefaultMaxFiles and DefaultMaxBytes.
	MaxFiles int
	MaxBytes int64
}

// Cache fetches repositories and checks out commits. Safe for concurrent
// use; fetches of one repository are serialised and shared.
type Cache struct {
	opts  Options
	mu    sync.Mutex
	repos map[string]*repoEntry
}

type repoEntry struct {
	mu        sync.Mutex
	path      string
	fetchedAt time.Time
	headRef   plumbing.ReferenceName
	repo      *git.Repository
}

// NewCache returns a cache rooted at opts.Dir.
func NewCache(opts Options) *Cache {
	if opts.MaxAge == 0 {
		opts.MaxAge = 3 * time.Minute
	}
	if opts.MaxFiles == 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	return &Cache{opts: opts, repos: map[string]*repoEntry{}}
}

func key(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}

func (c *Cache) entry(url string) *repoEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.repos[url]
	if !ok {
		e = &repoEntry{path: filepath.Join(c.opts.Dir, "repos", key(url))}
		c.repos[url] = e
	}
	return e
}

// ErrRevisionNotFound is returned when a targetRevision names nothing.
var ErrRevisionNotFound = errors.New("revision not found")

// Resolve returns the commit SHA that revision names in the repository at
// url, fetching first when the last fetch is older than MaxAge or refresh
// is set.
func (c *Cache) Resolve(ctx context.Context, url, revision string, creds Credentials, refresh bool) (string, error) {
	e := c.entry(url)
	e.mu.Lock()
	defer e.mu.Unlock()
	if refresh || e.repo == nil || time.Since(e.fetchedAt) > c.opts.MaxAge {
		if err := c.fetch(ctx, e, url, creds); err != nil {
			return "", err
		}
	}
	return resolve(e, revision)
}

func (c *Cache) fetch(ctx context.Context, e *repoEntry, url string, creds Credentials) error {
	auth, err := authFor(url, creds)
	if err != nil {
		return err
	}
	if e.repo == nil {
		r, err := git.PlainOpen(e.path)
		if err != nil {
			if err := os.MkdirAll(e.path, 0o755); err != nil {
				return fmt.Errorf("create repo cache: %w", err)
			}
			r, err = git.PlainInit(e.path, true)
			if err != nil {
				return fmt.Errorf("init repo cache: %w", err)
			}
			if _, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}}); err != nil {
				return err
			}
		}
		e.repo = r
	}
	remote, err := e.repo.Remote("origin")
	if err != nil {
		return err
	}
	started := time.Now()
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth})
	c.requested(url, "ls-remote", started, err)
	if err != nil {
		return fmt.Errorf("repository %s is unreachable: %s", redactURL(url), manifest.OneLine(err))
	}
	for _, r := range refs {
		if r.Name() == plumbing.HEAD && r.Type() == plumbing.SymbolicReference {
			e.headRef = r.Target()
		}
	}
	started = time.Now()
	err = remote.FetchContext(ctx, &git.FetchOptions{
		Auth:     auth,
		RefSpecs: []config.RefSpec{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"},
		Force:    true,
		Prune:    true,
		Tags:     git.NoTags,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		err = nil
	}
	c.requested(url, "fetch", started, err)
	if err != nil {
		return fmt.Errorf("fetch %s: %s%s", redactURL(url), manifest.OneLine(err), c.diskHint(err))
	}
	e.fetchedAt = time.Now()
	return nil
}

func (c *Cache) requested(url, kind string, started time.Time, err error) {
	if c.opts.OnRequest != nil {
		c.opts.OnRequest(redactURL(url), kind, time.Since(started), err)
	}
}

func resolve(e *repoEntry, revision string) (string, error) {
	r := e.repo
	rev := strings.TrimSpace(revision)
	if rev == "" || rev == "HEAD" {
		if e.headRef == "" {
			return "", fmt.Errorf("revision HEAD: the repository has no default branch: %w", ErrRevisionNotFound)
		}
		rev = e.headRef.String()
	}
	candidates := []plumbing.ReferenceName{plumbing.ReferenceName(rev), plumbing.NewBranchReferenceName(rev), plumbing.NewTagReferenceName(rev)}
	for _, name := range candidates {
		ref, err := r.Reference(name, true)
		if err != nil {
			continue
		}
		return peel(r, ref.Hash())
	}
	if isHex(rev) && len(rev) >= 4 {
		h, err := r.ResolveRevision(plumbing.Revision(rev))
		if err == nil {
			return peel(r, *h)
		}
	}
	return "", fmt.Errorf("revision %s: %w", revision, ErrRevisionNotFound)
}

// peel follows annotated tags to their commit.
func peel(r *git.Repository, h plumbing.Hash) (string, error) {
	if tag, err := r.TagObject(h); err == nil {
		c, err := tag.Commit()
		if err != nil {
			return "", err
		}
		return c.Hash.String(), nil
	}
	if _, err := r.CommitObject(h); err != nil {
		return "", fmt.Errorf("revision %s is not a commit: %w", h, ErrRevisionNotFound)
	}
	return h.String(), nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// Checkout materialises the commit's tree and returns its root. Trees are
// immutable and cached by repo + SHA.
func (c *Cache) Checkout(ctx context.Context, url, sha string) (string, error) {
	e := c.entry(url)
	dir := filepath.Join(c.opts.Dir, "trees", key(url), sha)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if e.repo == nil {
		return "", fmt.Errorf("repository %s not fetched", redactURL(url))
	}
	commit, err := e.repo.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", sha, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return "", err
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	err = c.materialise(ctx, e.repo.Storer, tree, tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("check out %s: %w%s", sha, err, c.diskHint(err))
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

func authFor(url string, creds Credentials) (transport.AuthMethod, error) {
	if creds.SSHPrivateKey != "" {
		user := "git"
		if ep, err := transport.NewEndpoint(url); err == nil && ep.User != "" {
			user = ep.User
		}
		keys, err := gitssh.NewPublicKeys(user, []byte(creds.SSHPrivateKey), "")
		if err != nil {
			return nil, fmt.Errorf("ssh private key for %s: %w", redactURL(url), err)
		}
		switch {
		case creds.InsecureIgnoreHostKey:
			keys.HostKeyCallback = ssh.InsecureIgnoreHostKey() //nolint:gosec // explicit opt-in per repository
		case creds.KnownHosts != "":
			cb, err := knownHostsCallback(creds.KnownHosts)
			if err != nil {
				return nil, err
			}
			keys.HostKeyCallback = cb
		default:
			return nil, fmt.Errorf("ssh repository %s: no known host key (set insecure or known hosts)", redactURL(url))
		}
		return keys, nil
	}
	if creds.Username != "" || creds.Password != "" {
		user := creds.Username
		if user == "" {
			user = "x-access-token" // token-only credentials, as GitHub and GitLab accept
		}
		return &http.BasicAuth{Username: user, Password: creds.Password}, nil
	}
	return nil, nil
}

// RedactURL drops user info (a password written into the URL) from a
// repository URL, for messages and for what status records.
func RedactURL(u string) string { return redactURL(u) }

// redactURL drops user info from a URL for messages.
func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if at := strings.Index(rest, "@"); at >= 0 && at < strings.IndexAny(rest+"/", "/") {
			return u[:i+3] + rest[at+1:]
		}
	}
	return u
}

// FetchedAt is when the repository at url was last fetched (zero if never).
func (c *Cache) FetchedAt(url string) time.Time {
	e := c.entry(url)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fetchedAt
}

// PathHash is the Git object hash of path (a directory's tree or a file's
// blob; "" or "." the whole tree) at commit sha of a fetched repository:
// equal hashes mean equal content, whatever the commit. ok is false when
// the path does not exist or the repository is not fetched.
func (c *Cache) PathHash(url, sha, path string) (string, bool) {
	e := c.entry(url)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.repo == nil {
		return "", false
	}
	commit, err := e.repo.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		return "", false
	}
	tree, err := commit.Tree()
	if err != nil {
		return "", false
	}
	p := strings.Trim(filepath.ToSlash(filepath.Clean(path)), "/")
	if p == "" || p == "." {
		return tree.Hash.String(), true
	}
	entry, err := tree.FindEntry(p)
	if err != nil {
		return "", false
	}
	return entry.Hash.String(), true
}

// diskHint says what a full disk means for the cache: a failed fetch or
// checkout leaves nothing half-written behind and is retried.
func (c *Cache) diskHint(err error) string {
	if errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device") {
		return fmt.Sprintf(" (the Git cache in %s is out of disk space; nothing half-written is kept, and the fetch is retried)", c.opts.Dir)
	}
	return ""
}

// ChangedFiles lists the paths that differ between commits from and to
// of a fetched repository (added, removed or modified files). ok is false
// when either commit is unknown or the change is too large to list
// (more than maxChangedFiles).
func (c *Cache) ChangedFiles(url, from, to string) ([]string, bool) {
	e := c.entry(url)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.repo == nil {
		return nil, false
	}
	trees := make([]*object.Tree, 2)
	for i, sha := range []string{from, to} {
		commit, err := e.repo.CommitObject(plumbing.NewHash(sha))
		if err != nil {
			return nil, false
		}
		if trees[i], err = commit.Tree(); err != nil {
			return nil, false
		}
	}
	files, err := TreeChanges(trees[0], trees[1])
	if err != nil || len(files) > maxChangedFiles {
		return nil, false
	}
	return files, true
}

// TreeChanges lists the paths that differ between two trees (added,
// removed or modified files): the one answer to "what did this change
// touch", with AnyUnder for "under these paths".
func TreeChanges(from, to *object.Tree) ([]string, error) {
	changes, err := object.DiffTree(from, to)
	if err != nil {
		return nil, err
	}
	var files []string
	seen := map[string]bool{}
	for _, ch := range changes {
		for _, name := range []string{ch.From.Name, ch.To.Name} {
			if name != "" && !seen[name] {
				seen[name] = true
				files = append(files, name)
			}
		}
	}
	return files, nil
}

// maxChangedFiles bounds ChangedFiles: a larger change concerns every
// app anyway.
const maxChangedFiles = 10000
