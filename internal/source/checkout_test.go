package source_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/filemode"

	"github.com/mlcd-dev/mlcd/internal/source"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

func checkout(t *testing.T, repo *gittest.Repo, sha string, opts source.Options) (string, error) {
	t.Helper()
	opts.Dir = t.TempDir()
	c := source.NewCache(opts)
	ctx := context.Background()
	if _, err := c.Resolve(ctx, repo.URL(), "main", source.Credentials{}, true); err != nil {
		t.Fatal(err)
	}
	return c.Checkout(ctx, repo.URL(), sha)
}

// A symlink anywhere in the tree whose target leaves the repository is
// refused at checkout, whichever app path would read it: Helm's loader
// follows symlinked directories, so `chart/link -> ../shared` holding
// `t -> /var/run/secrets/...` would render the controller's token.
func TestCheckoutRefusesSymlinksOutOfTheRepository(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secret, []byte("controller-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]map[string]string{
		"absolute, through a symlinked directory": {
			"chart/Chart.yaml":        "apiVersion: v2\nname: c\nversion: 1.0.0\n",
			"chart/templates/cm.yaml": "{{ .Files.Get \"link/t\" }}",
			"chart/link":              "->../shared",
			"shared/t":                "->" + secret,
		},
		"relative, climbing out": {"docs/x": "->../../../../../../../../" + strings.TrimPrefix(secret, "/")},
		"relative, through a chain of links that each look inside": {
			"a/s": "->..",      // the repository root: inside
			"a/t": "->s/../..", // lexically a/, really the root's parent
			"a/f": "x",
		},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			repo := gittest.New(t)
			sha := repo.Write(files).Commit("hostile")
			_, err := checkout(t, repo, sha, source.Options{})
			if !errors.Is(err, source.ErrUnsafeTree) || !strings.Contains(err.Error(), "points outside the repository") {
				t.Fatalf("checkout = %v, want a refusal naming the symlink", err)
			}
		})
	}
	// A link that stays inside is fine (charts share templates this way).
	repo := gittest.New(t)
	sha := repo.Write(map[string]string{"base/a.yaml": "a: 1", "app/link": "->../base"}).Commit("ok")
	dir, err := checkout(t, repo, sha, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "app/link/a.yaml")); err != nil || string(data) != "a: 1" {
		t.Fatalf("link inside the repository: %q, %v", data, err)
	}
}

// A crafted tree that names a symlink first and then a directory of the
// same name would write through the link: nothing is written outside the
// checkout, and the tree is refused.
func TestCheckoutNeverWritesThroughSymlinks(t *testing.T) {
	outside := t.TempDir()
	repo := gittest.New(t)
	sha := repo.CommitRaw("symlink then file",
		gittest.RawEntry{Name: "x", Mode: filemode.Symlink, Content: outside},
		gittest.RawEntry{Name: "x", Mode: filemode.Dir, Entries: []gittest.RawEntry{{Name: "planted", Mode: filemode.Regular, Content: "pwned"}}},
	)
	_, err := checkout(t, repo, sha, source.Options{})
	if !errors.Is(err, source.ErrUnsafeTree) {
		t.Fatalf("checkout = %v, want ErrUnsafeTree", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Fatal("the checkout wrote a file outside itself through a symlink")
	}
	// Duplicate and case-colliding names.
	for name, entries := range map[string][]gittest.RawEntry{
		"duplicate":      {{Name: "a", Mode: filemode.Regular, Content: "1"}, {Name: "a", Mode: filemode.Regular, Content: "2"}},
		"case-colliding": {{Name: "Values.yaml", Mode: filemode.Regular, Content: "1"}, {Name: "values.yaml", Mode: filemode.Regular, Content: "2"}},
		"dot-dot":        {{Name: "..", Mode: filemode.Dir, Entries: []gittest.RawEntry{{Name: "f", Mode: filemode.Regular, Content: "1"}}}},
	} {
		repo := gittest.New(t)
		sha := repo.CommitRaw(name, entries...)
		if _, err := checkout(t, repo, sha, source.Options{}); !errors.Is(err, source.ErrUnsafeTree) {
			t.Errorf("%s: checkout = %v, want ErrUnsafeTree", name, err)
		}
	}
}

func TestCheckoutBounds(t *testing.T) {
	repo := gittest.New(t)
	sha := repo.Write(map[string]string{"a": "12345", "b": "12345", "c": "12345"}).Commit("three")
	if _, err := checkout(t, repo, sha, source.Options{MaxFiles: 2}); !errors.Is(err, source.ErrTooLarge) || !strings.Contains(err.Error(), "more than 2 files") {
		t.Errorf("files: %v", err)
	}
	if _, err := checkout(t, repo, sha, source.Options{MaxBytes: 12}); !errors.Is(err, source.ErrTooLarge) || !strings.Contains(err.Error(), "more than 12 bytes") {
		t.Errorf("bytes: %v", err)
	}
	if _, err := checkout(t, repo, sha, source.Options{MaxFiles: 3, MaxBytes: 15}); err != nil {
		t.Errorf("within bounds: %v", err)
	}
}
