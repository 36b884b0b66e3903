// Package gittest makes real Git repositories for tests: a work tree with
// commits made by go-git, served over file:// or smart HTTP.
package gittest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/mlcd-dev/mlcd/internal/source"
	"golang.org/x/crypto/ssh"
)

// Repo is a non-bare repository on branch main.
type Repo struct {
	t    testing.TB
	Dir  string
	repo *git.Repository
}

// New creates an empty repository in a temp dir.
func New(t testing.TB) *Repo {
	t.Helper()
	dir := t.TempDir()
	r, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.Main}})
	if err != nil {
		t.Fatal(err)
	}
	return &Repo{t: t, Dir: dir, repo: r}
}

// URL is the repository's file:// URL.
func (r *Repo) URL() string { return "file://" + r.Dir }

// Write sets files (path → content); an empty content with a "->" prefix
// makes a symlink ("->../target").
func (r *Repo) Write(files map[string]string) *Repo {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		_ = os.Remove(p)
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	return r
}

// CopyFS copies the files under root of fsys into dir of the repo,
// replacing each key of replace with its value.
func (r *Repo) CopyFS(fsys fs.FS, root, dir string, replace map[string]string) *Repo {
	r.t.Helper()
	if err := source.CopyFS(fsys, root, filepath.Join(r.Dir, dir), replace); err != nil {
		r.t.Fatal(err)
	}
	return r
}

// Remove deletes files or directories.
func (r *Repo) Remove(paths ...string) *Repo {
	for _, p := range paths {
		if err := os.RemoveAll(filepath.Join(r.Dir, p)); err != nil {
			r.t.Fatal(err)
		}
	}
	return r
}

// Commit stages everything and commits; it returns the SHA.
func (r *Repo) Commit(msg string) string {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		r.t.Fatal(err)
	}
	sig := &object.Signature{Name: "test", Email: "test@example.com", When: time.Now()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig, AllowEmptyCommits: true})
	if err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

// Tag creates a lightweight tag at HEAD.
func (r *Repo) Tag(name string) {
	r.t.Helper()
	head, err := r.repo.Head()
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.repo.CreateTag(name, head.Hash(), nil); err != nil {
		r.t.Fatal(err)
	}
}

// ServeHTTP serves the repository over Git's smart HTTP protocol through
// the system git-http-backend, requiring basic auth user:password when
// user is not empty. It returns the clone URL.
func (r *Repo) ServeHTTP(user, password string) string {
	r.t.Helper()
	srv := httptest.NewServer(r.Handler(user, password))
	r.t.Cleanup(srv.Close)
	return srv.URL + r.HTTPPath()
}

// HTTPPath is the repository's path under a server of Handler.
func (r *Repo) HTTPPath() string { return "/" + filepath.Base(r.Dir) + "/.git" }

// Handler is the smart-HTTP handler ServeHTTP serves (for tests that put
// faults in front of it).
func (r *Repo) Handler(user, password string) http.Handler {
	r.t.Helper()
	backend, err := exec.LookPath("git")
	if err != nil {
		r.t.Skip("git not installed")
	}
	execPath, err := exec.Command(backend, "--exec-path").Output()
	if err != nil {
		r.t.Fatal(err)
	}
	h := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Dir(r.Dir), "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=test"},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		h.ServeHTTP(w, req)
	})
}

// Git runs the git binary in dir as a fixed test identity and returns its
// trimmed output, failing the test on error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Lead", "GIT_AUTHOR_EMAIL=lead@example.com", "GIT_COMMITTER_NAME=Lead", "GIT_COMMITTER_EMAIL=lead@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// SSHKey writes a new Ed25519 OpenSSH private key file and returns it with
// the public key's SHA256 fingerprint and authorized_keys line.
func SSHKey(t testing.TB) (file, fingerprint, authorized string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return file, ssh.FingerprintSHA256(sp), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

// Head is the SHA of the checked-out commit.
func (r *Repo) Head() string { return Git(r.t, r.Dir, "rev-parse", "HEAD") }

// RawEntry is one entry of a tree CommitRaw writes as given: in this
// order, duplicates and all (what a hostile pusher can craft and Git's
// own tools never write).
type RawEntry struct {
	Name    string
	Mode    filemode.FileMode
	Content string     // a blob's content (a symlink's target)
	Entries []RawEntry // a directory's entries (Mode filemode.Dir)
}

// CommitRaw commits a tree built from entries verbatim on top of HEAD (if
// any) and moves main to it; it returns the SHA.
func (r *Repo) CommitRaw(msg string, entries ...RawEntry) string {
	r.t.Helper()
	st := r.repo.Storer
	var write func([]RawEntry) plumbing.Hash
	write = func(es []RawEntry) plumbing.Hash {
		tree := &object.Tree{}
		for _, e := range es {
			var h plumbing.Hash
			if e.Mode == filemode.Dir {
				h = write(e.Entries)
			} else {
				obj := st.NewEncodedObject()
				obj.SetType(plumbing.BlobObject)
				w, _ := obj.Writer()
				_, _ = w.Write([]byte(e.Content))
				_ = w.Close()
				var err error
				if h, err = st.SetEncodedObject(obj); err != nil {
					r.t.Fatal(err)
				}
			}
			tree.Entries = append(tree.Entries, object.TreeEntry{Name: e.Name, Mode: e.Mode, Hash: h})
		}
		obj := st.NewEncodedObject()
		if err := tree.Encode(obj); err != nil {
			r.t.Fatal(err)
		}
		h, err := st.SetEncodedObject(obj)
		if err != nil {
			r.t.Fatal(err)
		}
		return h
	}
	sig := object.Signature{Name: "test", Email: "test@example.com", When: time.Now()}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: write(entries)}
	if head, err := r.repo.Head(); err == nil {
		c.ParentHashes = []plumbing.Hash{head.Hash()}
	}
	obj := st.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		r.t.Fatal(err)
	}
	h, err := st.SetEncodedObject(obj)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := st.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName("main"), h)); err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}
