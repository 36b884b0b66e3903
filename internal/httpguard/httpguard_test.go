package httpguard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/internal/httpguard"
)

func TestGuard(t *testing.T) {
	var reached int
	h := httpguard.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }), httpguard.Options{
		AllowedHosts: []string{"mlcd.internal"},
		Exempt:       func(r *http.Request) bool { return r.URL.Path == "/api/webhook" },
	})
	srv := httptest.NewServer(h) // on 127.0.0.1
	defer srv.Close()
	do := func(method, path, host, ct, auth string) int {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(`{"a":1}`))
		if host != "" {
			req.Host = host
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		name, method, path, host, ct, auth string
		want                               int
	}{
		{"cross-site text/plain POST", "POST", "/x", "", "text/plain", "", 415},
		{"form POST", "POST", "/x", "", "application/x-www-form-urlencoded", "", 415},
		{"POST without a type", "POST", "/x", "", "", "", 415},
		{"JSON POST", "POST", "/x", "", "application/json; charset=utf-8", "", 200},
		{"POST with a token", "POST", "/x", "", "", "Bearer t", 200},
		{"GET", "GET", "/x", "", "", "", 200},
		{"rebound host name", "GET", "/x", "evil.example:8080", "", "", 421},
		{"rebound host name, JSON POST", "POST", "/x", "evil.example", "application/json", "", 421},
		{"localhost", "GET", "/x", "localhost:8080", "", "", 200},
		{"allowed name", "GET", "/x", "MLCD.internal:8080", "", "", 200},
		{"webhook exempt", "POST", "/api/webhook", "", "application/x-www-form-urlencoded", "", 200},
	} {
		before := reached
		got := do(c.method, c.path, c.host, c.ct, c.auth)
		if got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
		if (got == 200) != (reached == before+1) {
			t.Errorf("%s: handler reached %d times", c.name, reached-before)
		}
	}
}
