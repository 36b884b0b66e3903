package source_test

import (
	"testing"

	"github.com/mlcd-dev/mlcd/internal/source"
)

func TestCredentialsCover(t *testing.T) {
	for _, c := range []struct {
		prefix, repo string
		want         bool
	}{
		{"https://git.corp.example", "https://git.corp.example/team/app.git", true},
		{"https://git.corp.example/team", "https://git.corp.example/team/app", true},
		{"https://git.corp.example/team/", "https://GIT.corp.example/team/app.git", true},
		{"https://git.corp.example", "https://git.corp.example@evil.example/team/app", false},
		{"https://git.corp.example", "https://git.corp.example.evil.example/x", false},
		{"https://git.corp.example/team", "https://git.corp.example/team-evil/app", false},
		{"https://git.corp.example", "http://git.corp.example/team/app", false},
		{"https://git.corp.example", "https://git.corp.example:8443/team/app", false},
		{"https://git.corp.example:443", "https://git.corp.example/team/app", true},
		{"git@git.corp.example:team", "ssh://git@git.corp.example/team/app.git", true},
		{"git@git.corp.example:team", "https://git.corp.example/team/app.git", false},
		{"https://127.0.0.1:8080/charts", "https://127.0.0.1:8080/charts", true},
	} {
		if got := source.CredentialsCover(c.prefix, c.repo); got != c.want {
			t.Errorf("CredentialsCover(%q, %q) = %v, want %v", c.prefix, c.repo, got, c.want)
		}
	}
}

func TestRepoIdentity(t *testing.T) {
	want := "github.com/org/repo"
	for _, u := range []string{"https://github.com/org/repo", "https://github.com/Org/Repo.git", "git@github.com:org/repo.git", "ssh://git@github.com:22/org/repo", "https://user:pw@github.com:443/org/repo/", "http://github.com/org/repo"} {
		if got := source.RepoIdentity(u); got != want {
			t.Errorf("RepoIdentity(%q) = %q, want %q", u, got, want)
		}
	}
	if got := source.RepoIdentity("https://git.example:8443/a/b"); got != "git.example:8443/a/b" {
		t.Errorf("non-default port: %q", got)
	}
	if source.SameHost("https://charts.example/r", "https://charts.example@evil.example/c.tgz") {
		t.Error("user info counted as host")
	}
}
