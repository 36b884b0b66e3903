package registry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
)

// TestHostileRegistryAnswers: a registry answering malformed JSON, or a
// 100 MiB body, gives a clear error (read at most 64 MiB), never a model
// version the gate could pass; a version with shell metacharacters or
// path separators is sent as a query value, never as a path.
func TestHostileRegistryAnswers(t *testing.T) {
	var lastQuery, lastPath string
	mode := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastQuery, lastPath = r.URL.RawQuery, r.URL.Path
		switch mode {
		case "malformed":
			io.WriteString(w, `{"model_version": {"name": "fd", "version": `)
		case "huge":
			io.WriteString(w, `{"model_version": {"name": "`)
			chunk := strings.Repeat("x", 1<<20)
			for range 100 {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
			io.WriteString(w, `"}}`)
		default:
			http.Error(w, `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such version"}`, http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c, err := registry.NewClient(registry.ClientOptions{URL: srv.URL, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range []string{"malformed", "huge"} {
		mode = m
		mv, err := c.GetModelVersion(ctx, "fd", "1")
		if err == nil || mv != nil {
			t.Errorf("%s answer: version %+v, error %v", m, mv, err)
			continue
		}
		if !strings.Contains(err.Error(), "decode answer") {
			t.Errorf("%s answer: %v", m, err)
		}
	}
	mode = ""
	for _, v := range []string{"v1; rm -rf /", "../../etc/passwd", "$(id)", "v1\nX-Injected: 1"} {
		_, err := c.GetModelVersion(ctx, "fd", v)
		if err == nil {
			t.Errorf("version %q found", v)
		}
		if lastPath != "/api/2.0/mlflow/model-versions/get" || strings.Contains(lastQuery, "/etc") && !strings.Contains(lastQuery, "%2F") {
			t.Errorf("version %q reached the server as path %q query %q", v, lastPath, lastQuery)
		}
	}
}

// A web page the user has open can POST text/plain to 127.0.0.1 without a
// preflight, and can re-point its own host name at 127.0.0.1: the open
// embedded registry refuses both, and nothing is created.
func TestRegistryRefusesCrossSitePosts(t *testing.T) {
	reg := registrytest.Start(t, registry.ServerOptions{})
	post := func(ct, host string) int {
		req, _ := http.NewRequest("POST", reg.URL+"/api/2.0/mlflow/registered-models/create", strings.NewReader(`{"name":"planted"}`))
		req.Header.Set("Content-Type", ct)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := post("text/plain", ""); st != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain POST: %d", st)
	}
	if st := post("application/json", "attacker.example:5000"); st != http.StatusMisdirectedRequest {
		t.Errorf("rebound Host: %d", st)
	}
	if _, err := reg.Client.GetRegisteredModel(context.Background(), "planted"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("a refused POST created the model: %v", err)
	}
	if st := post("application/json", ""); st != 200 {
		t.Errorf("a JSON POST: %d", st)
	}
}
