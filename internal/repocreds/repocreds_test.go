package repocreds_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/mlcd-dev/mlcd/internal/repocreds"
)

// A repository-write Secret serves pushes only; reads keep the read
// credentials, and a repository without one pushes with its reads'.
func TestLookupWrite(t *testing.T) {
	sec := func(name, typ, url, pass string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "argocd", Labels: map[string]string{repocreds.SecretTypeLabel: typ}},
			Data: map[string][]byte{"url": []byte(url), "username": []byte("u"), "password": []byte(pass)}}
	}
	c := fake.NewClientBuilder().WithObjects(
		sec("read", repocreds.SecretTypeRepo, "https://git.example/team/app.git", "read-pass"),
		sec("write", repocreds.SecretTypeRepoWrite, "https://git.example/team/app", "write-pass"),
		sec("other", repocreds.SecretTypeCreds, "https://git.example/other", "other-pass"),
	).Build()
	ctx := context.Background()
	for _, tc := range []struct {
		write     bool
		url, want string
	}{
		{false, "https://git.example/team/app", "read-pass"},
		{true, "https://git.example/team/app", "write-pass"},
		{true, "https://git.example/other/x", "other-pass"},
		{true, "https://git.example@evil.example/team/app", ""},
	} {
		lookup := repocreds.Lookup
		if tc.write {
			lookup = repocreds.LookupWrite
		}
		got, err := lookup(ctx, c, "argocd", "default", tc.url)
		if err != nil || got.Password != tc.want {
			t.Errorf("write=%v %s: %q, %v; want %q", tc.write, tc.url, got.Password, err, tc.want)
		}
	}
}

// Select matches parsed URLs and honours a Secret's project.
func TestSelect(t *testing.T) {
	sec := func(name, typ, url, project string) corev1.Secret {
		s := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"argocd.argoproj.io/secret-type": typ}}, Data: map[string][]byte{"url": []byte(url)}}
		if project != "" {
			s.Data["project"] = []byte(project)
		}
		return s
	}
	secrets := []corev1.Secret{
		sec("corp", "repo-creds", "https://git.corp.example", ""),
		sec("corp-team", "repo-creds", "https://git.corp.example/team", ""),
		sec("team-a-only", "repo-creds", "https://git.corp.example/team", "team-a"),
		sec("exact", "repository", "https://git.corp.example/team/app.git", ""),
	}
	for _, c := range []struct{ project, url, want string }{
		{"default", "https://git.corp.example/other/x", "corp"},
		{"default", "https://git.corp.example/team/x", "corp-team"},
		{"team-a", "https://git.corp.example/team/x", "team-a-only"},
		{"default", "https://git.corp.example/team/app", "exact"},
		{"default", "https://git.corp.example@127.0.0.1:8080/team/x", ""},
		{"default", "https://git.corp.example.evil.example/team/x", ""},
		{"default", "https://git.corp.example/team-evil/x", "corp"},
	} {
		got := ""
		if s := repocreds.Select(secrets, c.project, c.url); s != nil {
			got = s.Name
		}
		if got != c.want {
			t.Errorf("Select(%s, %s) = %q, want %q", c.project, c.url, got, c.want)
		}
	}
}
