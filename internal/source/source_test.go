package source_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/internal/source"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

func TestResolveRevisions(t *testing.T) {
	repo := gittest.New(t)
	first := repo.Write(map[string]string{"a.txt": "1"}).Commit("one")
	repo.Tag("v1")
	second := repo.Write(map[string]string{"a.txt": "2"}).Commit("two")
	c := source.NewCache(source.Options{Dir: t.TempDir()})
	ctx := context.Background()
	for rev, want := range map[string]string{"": second, "HEAD": second, "main": second, "v1": first, first: first, first[:8]: first} {
		got, err := c.Resolve(ctx, repo.URL(), rev, source.Credentials{}, false)
		if err != nil || got != want {
			t.Errorf("resolve %q = %s, %v; want %s", rev, got, err, want)
		}
	}
	if _, err := c.Resolve(ctx, repo.URL(), "no-such-branch", source.Credentials{}, false); !errors.Is(err, source.ErrRevisionNotFound) {
		t.Errorf("missing revision: %v", err)
	}
	dir, err := c.Checkout(ctx, repo.URL(), first)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(data) != "1" {
		t.Errorf("checkout of %s holds %q", first, data)
	}
}

func TestFetchSeesNewCommitsOnlyWhenAsked(t *testing.T) {
	repo := gittest.New(t)
	first := repo.Write(map[string]string{"a": "1"}).Commit("one")
	c := source.NewCache(source.Options{Dir: t.TempDir()})
	ctx := context.Background()
	if got, _ := c.Resolve(ctx, repo.URL(), "main", source.Credentials{}, false); got != first {
		t.Fatalf("got %s", got)
	}
	second := repo.Write(map[string]string{"a": "2"}).Commit("two")
	if got, _ := c.Resolve(ctx, repo.URL(), "main", source.Credentials{}, false); got != first {
		t.Errorf("without refresh, within MaxAge: got %s, want the cached %s", got, first)
	}
	if got, _ := c.Resolve(ctx, repo.URL(), "main", source.Credentials{}, true); got != second {
		t.Errorf("with refresh: got %s, want %s", got, second)
	}
}

func TestUnreachableRepository(t *testing.T) {
	c := source.NewCache(source.Options{Dir: t.TempDir()})
	_, err := c.Resolve(context.Background(), "file:///nonexistent/repo", "main", source.Credentials{}, false)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("got %v, want an unreachable error", err)
	}
}

func TestSmartHTTPWithBasicAuth(t *testing.T) {
	repo := gittest.New(t)
	sha := repo.Write(map[string]string{"a": "1"}).Commit("one")
	url := repo.ServeHTTP("ci", "s3cret")
	ctx := context.Background()
	c := source.NewCache(source.Options{Dir: t.TempDir()})
	if _, err := c.Resolve(ctx, url, "main", source.Credentials{}, false); err == nil {
		t.Fatal("anonymous fetch of a protected repo succeeded")
	} else if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error leaks the password: %v", err)
	}
	got, err := c.Resolve(ctx, url, "main", source.Credentials{Username: "ci", Password: "s3cret"}, true)
	if err != nil || got != sha {
		t.Fatalf("authenticated fetch = %s, %v", got, err)
	}
}

func TestJoinRefusesEscapes(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o600)
	os.MkdirAll(filepath.Join(root, "app"), 0o755)
	os.WriteFile(filepath.Join(root, "app", "ok.yaml"), []byte("a: 1"), 0o600)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "app", "link.yaml"))
	os.Symlink("ok.yaml", filepath.Join(root, "app", "inner.yaml"))
	for _, bad := range []string{"../../../etc/passwd", "/etc/passwd", "app/../../x", "app/link.yaml"} {
		if _, err := source.Join(root, bad); err == nil || os.IsNotExist(err) {
			t.Errorf("Join(%q) = %v, want a refusal", bad, err)
		}
	}
	for _, good := range []string{"app/ok.yaml", "app/inner.yaml"} {
		if _, err := source.Join(root, good); err != nil {
			t.Errorf("Join(%q) = %v", good, err)
		}
	}
	if err := source.CheckConfined(root, filepath.Join(root, "app")); err == nil || !strings.Contains(err.Error(), "app/link.yaml") {
		t.Errorf("CheckConfined = %v, want the escaping link named", err)
	}
}
