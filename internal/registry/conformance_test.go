package registry_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
)

// rawCall makes an HTTP call as a non-Go MLflow client would.
func rawCall(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json") // as MLflow's Python client (requests' json=)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out
}

// TestWireConformance drives every route over raw HTTP: method, where the
// parameters go, status codes and error codes.
func TestWireConformance(t *testing.T) {
	r := registrytest.Start(t, registry.ServerOptions{})
	api := r.URL + "/api/2.0/mlflow/"
	steps := []struct {
		name, method, path, body string
		status                   int
		code                     string // expected error_code, "" for success
		has                      string // a top-level key the answer must hold
	}{
		{"create model", "POST", "registered-models/create", `{"name":"m","tags":[{"key":"team","value":"fraud"}],"description":"d"}`, 200, "", "registered_model"},
		{"create model again", "POST", "registered-models/create", `{"name":"m"}`, 400, "RESOURCE_ALREADY_EXISTS", ""},
		{"create model missing name", "POST", "registered-models/create", `{}`, 400, "INVALID_PARAMETER_VALUE", ""},
		{"create model malformed json", "POST", "registered-models/create", `{"name":`, 400, "INVALID_PARAMETER_VALUE", ""},
		{"create model wrong type", "POST", "registered-models/create", `{"name":5}`, 400, "INVALID_PARAMETER_VALUE", ""},
		{"get model by query", "GET", "registered-models/get?name=m", "", 200, "", "registered_model"},
		{"get missing model", "GET", "registered-models/get?name=nope", "", 404, "RESOURCE_DOES_NOT_EXIST", ""},
		{"search models", "GET", "registered-models/search?filter=name+LIKE+%27%25m%25%27&max_results=10", "", 200, "", "registered_models"},
		{"search models too many", "GET", "registered-models/search?max_results=1001", "", 400, "INVALID_PARAMETER_VALUE", ""},
		{"search models bad token", "GET", "registered-models/search?page_token=%21%21", "", 400, "INVALID_PARAMETER_VALUE", ""},
		{"search models sql injection", "GET", "registered-models/search?filter=name%3D%27m%27%3B+DROP+TABLE+registered_models", "", 400, "INVALID_PARAMETER_VALUE", ""},
		{"update model", "PATCH", "registered-models/update", `{"name":"m","description":"new"}`, 200, "", "registered_model"},
		{"set model tag", "POST", "registered-models/set-tag", `{"name":"m","key":"k","value":"v"}`, 200, "", ""},
		{"delete model tag body", "DELETE", "registered-models/delete-tag", `{"name":"m","key":"k"}`, 200, "", ""},
		{"delete missing model tag", "DELETE", "registered-models/delete-tag", `{"name":"m","key":"k"}`, 404, "RESOURCE_DOES_NOT_EXIST", ""},
		{"create experiment", "POST", "experiments/create", `{"name":"e"}`, 200, "", "experiment_id"},
		{"create experiment again", "POST", "experiments/create", `{"name":"e"}`, 400, "RESOURCE_ALREADY_EXISTS", ""},
		{"experiment by name", "GET", "experiments/get-by-name?experiment_name=e", "", 200, "", "experiment"},
		{"missing experiment", "GET", "experiments/get-by-name?experiment_name=x", "", 404, "RESOURCE_DOES_NOT_EXIST", ""},
		{"create version", "POST", "model-versions/create", `{"name":"m","source":"s3://b/m/1","tags":[{"key":"version","value":"v1.0.0"}]}`, 200, "", "model_version"},
		{"create version dotdot", "POST", "model-versions/create", `{"name":"m","source":"s3://b/../etc"}`, 400, "INVALID_PARAMETER_VALUE", ""},
		{"create version no model", "POST", "model-versions/create", `{"name":"nope","source":"s3://b"}`, 404, "RESOURCE_DOES_NOT_EXIST", ""},
		{"create version missing source", "POST", "model-versions/create", `{"name":"m"}`, 400, "INVALID_PARAMETER_VALUE", ""},
		{"get version", "GET", "model-versions/get?name=m&version=1", "", 200, "", "model_version"},
		{"get missing version", "GET", "model-versions/get?name=m&version=9", "", 404, "RESOURCE_DOES_NOT_EXIST", ""},
		{"get version not a number", "GET", "model-versions/get?name=m&version=x", "", 400, "INVALID_PARAMETER_VALUE", ""},
		{"search versions by tag", "GET", "model-versions/search?filter=tags.version+%3D+%27v1.0.0%27", "", 200, "", "model_versions"},
		{"search versions unsupported key", "GET", "model-versions/search?filter=source+%3D+%27x%27", "", 400, "INVALID_PARAMETER_VALUE", ""},
		{"update version", "PATCH", "model-versions/update", `{"name":"m","version":"1","description":"x"}`, 200, "", "model_version"},
		{"set version tag", "POST", "model-versions/set-tag", `{"name":"m","version":"1","key":"k","value":"v"}`, 200, "", ""},
		{"delete version tag", "DELETE", "model-versions/delete-tag", `{"name":"m","version":"1","key":"k"}`, 200, "", ""},
		{"transition stage", "POST", "model-versions/transition-stage", `{"name":"m","version":"1","stage":"staging","archive_existing_versions":false}`, 200, "", "model_version"},
		{"transition bad stage", "POST", "model-versions/transition-stage", `{"name":"m","version":"1","stage":"qa"}`, 400, "INVALID_PARAMETER_VALUE", ""},
		{"latest versions", "POST", "registered-models/get-latest-versions", `{"name":"m","stages":["Staging"]}`, 200, "", "model_versions"},
		{"download uri", "GET", "model-versions/get-download-uri?name=m&version=1", "", 200, "", "artifact_uri"},
		{"set alias", "POST", "registered-models/alias", `{"name":"m","alias":"champion","version":"1"}`, 200, "", ""},
		{"set alias missing version", "POST", "registered-models/alias", `{"name":"m","alias":"champion","version":"7"}`, 404, "RESOURCE_DOES_NOT_EXIST", ""},
		{"set reserved alias", "POST", "registered-models/alias", `{"name":"m","alias":"latest","version":"1"}`, 400, "INVALID_PARAMETER_VALUE", ""},
		{"get alias", "GET", "registered-models/alias?name=m&alias=champion", "", 200, "", "model_version"},
		{"get missing alias", "GET", "registered-models/alias?name=m&alias=nope", "", 400, "INVALID_PARAMETER_VALUE", ""},
		{"delete alias", "DELETE", "registered-models/alias", `{"name":"m","alias":"champion"}`, 200, "", ""},
		{"rename model", "POST", "registered-models/rename", `{"name":"m","new_name":"m2"}`, 200, "", "registered_model"},
		{"old name gone", "GET", "registered-models/get?name=m", "", 404, "RESOURCE_DOES_NOT_EXIST", ""},
		{"versions follow rename", "GET", "model-versions/get?name=m2&version=1", "", 200, "", "model_version"},
		{"delete version", "DELETE", "model-versions/delete", `{"name":"m2","version":"1"}`, 200, "", ""},
		{"delete model", "DELETE", "registered-models/delete", `{"name":"m2"}`, 200, "", ""},
		{"delete missing model", "DELETE", "registered-models/delete", `{"name":"m2"}`, 404, "RESOURCE_DOES_NOT_EXIST", ""},
		{"unknown route", "GET", "no/such/route", "", 404, "ENDPOINT_NOT_FOUND", ""},
		{"wrong method", "GET", "registered-models/create", "", 404, "ENDPOINT_NOT_FOUND", ""},
		{"bool query must be true/false", "GET", "registered-models/search?max_results=abc", "", 400, "INVALID_PARAMETER_VALUE", ""},
	}
	for _, s := range steps {
		status, body := rawCall(t, s.method, api+s.path, s.body)
		if status != s.status {
			t.Errorf("%s: status %d, want %d (body %v)", s.name, status, s.status, body)
			continue
		}
		if got, _ := body["error_code"].(string); got != s.code {
			t.Errorf("%s: error_code %q, want %q", s.name, got, s.code)
		}
		if s.has != "" {
			if _, ok := body[s.has]; !ok {
				t.Errorf("%s: answer %v lacks %q", s.name, body, s.has)
			}
		}
	}
}

func TestResponsesUseMLflowEncoding(t *testing.T) {
	r := registrytest.Start(t, registry.ServerOptions{})
	ctx := context.Background()
	if _, err := r.Client.CreateRegisteredModel(ctx, "enc", "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Client.CreateModelVersion(ctx, "enc", registry.CreateVersionOptions{Source: "s3://x"}); err != nil {
		t.Fatal(err)
	}
	_, body := rawCall(t, "GET", r.URL+"/api/2.0/mlflow/model-versions/get?name=enc&version=1", "")
	mv := body["model_version"].(map[string]any)
	if _, ok := mv["creation_timestamp"].(float64); !ok {
		t.Errorf("creation_timestamp is %T, want a JSON number", mv["creation_timestamp"])
	}
	if mv["status"] != "READY" || mv["version"] != "1" {
		t.Errorf("status %v version %v, want READY and \"1\"", mv["status"], mv["version"])
	}
	if _, ok := mv["description"]; ok {
		t.Errorf("unset description is present: %v", mv)
	}
	_, empty := rawCall(t, "GET", r.URL+"/api/2.0/mlflow/registered-models/search?filter=name+%3D+%27none%27", "")
	if len(empty) != 0 {
		t.Errorf("empty search answered %v, want {}", empty)
	}
}

func TestClientTypedErrors(t *testing.T) {
	r := registrytest.Start(t, registry.ServerOptions{})
	ctx := context.Background()
	c := r.Client
	if _, err := c.GetRegisteredModel(ctx, "missing"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("missing model: %v, want ErrNotFound", err)
	}
	if _, err := c.CreateRegisteredModel(ctx, "dup", "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRegisteredModel(ctx, "dup", "", nil); !errors.Is(err, registry.ErrAlreadyExists) {
		t.Errorf("duplicate: %v, want ErrAlreadyExists", err)
	}
	if _, err := c.CreateModelVersion(ctx, "dup", registry.CreateVersionOptions{Source: "../x"}); !errors.Is(err, registry.ErrInvalidParameter) {
		t.Errorf("bad source: %v, want ErrInvalidParameter", err)
	}
	_, err := c.GetVersionByAlias(ctx, "dup", "nope")
	if !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("missing alias: %v, want ErrNotFound", err)
	}
}

func TestAuthRequiredOnEveryRoute(t *testing.T) {
	r := registrytest.Start(t, registry.ServerOptions{AuthToken: "s3cret", BasicUsers: map[string]string{"ci": "pw"}})
	for _, path := range []string{
		"/api/2.0/mlflow/registered-models/search",
		"/api/2.0/mlflow/model-versions/search",
		"/api/2.0/mlflow/runs/get?run_id=x",
		"/api/2.0/mlflow-artifacts/artifacts?path=x",
		"/api/2.0/mlflow/no/such/route",
	} {
		status, body := rawCall(t, "GET", r.URL+path, "")
		if status != 401 || body["error_code"] != "UNAUTHENTICATED" {
			t.Errorf("%s without credentials: %d %v, want 401 UNAUTHENTICATED", path, status, body)
		}
	}
	ctx := context.Background()
	bearer, _ := registry.NewClient(registry.ClientOptions{URL: r.URL, Token: "s3cret"})
	if _, _, err := bearer.SearchRegisteredModels(ctx, registry.SearchOptions{}); err != nil {
		t.Errorf("bearer token: %v", err)
	}
	basic, _ := registry.NewClient(registry.ClientOptions{URL: r.URL, Username: "ci", Password: "pw", Token: "wrong"})
	if _, _, err := basic.SearchRegisteredModels(ctx, registry.SearchOptions{}); err != nil {
		t.Errorf("basic auth must win over a token: %v", err)
	}
	wrong, _ := registry.NewClient(registry.ClientOptions{URL: r.URL, Token: "nope"})
	if _, _, err := wrong.SearchRegisteredModels(ctx, registry.SearchOptions{}); !errors.Is(err, registry.ErrUnauthenticated) {
		t.Errorf("wrong token: %v, want ErrUnauthenticated", err)
	} else if strings.Contains(err.Error(), "nope") {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestPaginationAcross2500Versions(t *testing.T) {
	r := registrytest.Start(t, registry.ServerOptions{})
	ctx := context.Background()
	if _, err := r.Client.CreateRegisteredModel(ctx, "big", "", nil); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2500; i++ {
		if _, err := r.Client.CreateModelVersion(ctx, "big", registry.CreateVersionOptions{Source: fmt.Sprintf("s3://b/%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	pages := 0
	opts := registry.SearchOptions{Filter: "name = 'big'", MaxResults: 300}
	for {
		vs, next, err := r.Client.SearchModelVersions(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range vs {
			if seen[v.Version] {
				t.Fatalf("version %s seen twice", v.Version)
			}
			seen[v.Version] = true
		}
		if next == "" {
			break
		}
		data, err := base64.StdEncoding.DecodeString(next)
		if err != nil || !strings.Contains(string(data), `"offset"`) {
			t.Fatalf("page token %q is not base64 of {\"offset\": N}", next)
		}
		opts.PageToken = next
	}
	if len(seen) != 2500 || pages != 9 {
		t.Fatalf("saw %d versions in %d pages, want 2500 in 9", len(seen), pages)
	}
}

func TestMetricsRoundTripAndResolve(t *testing.T) {
	r := registrytest.Start(t, registry.ServerOptions{})
	ctx := context.Background()
	c := r.Client
	expID, err := c.CreateExperiment(ctx, "eval")
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.CreateRun(ctx, expID, "offline", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LogMetric(ctx, run.Info.RunID, "auc", 0.90, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.LogBatch(ctx, run.Info.RunID, []registry.Metric{{Key: "auc", Value: 0.95, Step: 1}, {Key: "latency_p99_ms", Value: 41}}, []registry.Param{{Key: "lr", Value: "0.1"}}, nil); err != nil {
		t.Fatal(err)
	}
	hist, err := c.GetMetricHistory(ctx, run.Info.RunID, "auc")
	if err != nil || len(hist) != 2 || hist[0].Value != 0.90 || hist[1].Value != 0.95 {
		t.Fatalf("auc history = %v, %v; want [0.90 0.95]", hist, err)
	}
	if _, err := c.UpdateRun(ctx, run.Info.RunID, "FINISHED"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRegisteredModel(ctx, "fraud", "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateModelVersion(ctx, "fraud", registry.CreateVersionOptions{Source: "s3://f/1", RunID: run.Info.RunID, Tags: []registry.Tag{{Key: "version", Value: "v2.3.2"}}}); err != nil {
		t.Fatal(err)
	}
	v, err := registry.Resolve(ctx, c, "fraud", "v2.3.2")
	if err != nil || v.Version != "1" {
		t.Fatalf("resolve v2.3.2 = %v, %v; want version 1", v, err)
	}
	if v2, err := registry.Resolve(ctx, c, "fraud", "1"); err != nil || v2.Source != "s3://f/1" {
		t.Fatalf("resolve 1 = %v, %v", v2, err)
	}
	if _, err := registry.Resolve(ctx, c, "fraud", "v9.9.9"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("resolve missing = %v, want ErrNotFound", err)
	}
	m, err := c.VersionMetrics(ctx, v)
	if err != nil || m["auc"] != 0.95 || m["latency_p99_ms"] != 41 {
		t.Fatalf("metrics = %v, %v; want auc 0.95 (latest step) and latency 41", m, err)
	}
	got, err := c.GetRun(ctx, run.Info.RunID)
	if err != nil || got.Info.Status != "FINISHED" || len(got.Data.Params) != 1 {
		t.Fatalf("run = %+v, %v", got, err)
	}
}

func TestAliasesAndTags(t *testing.T) {
	r := registrytest.Start(t, registry.ServerOptions{})
	ctx := context.Background()
	c := r.Client
	if _, err := c.CreateRegisteredModel(ctx, "a", "", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := c.CreateModelVersion(ctx, "a", registry.CreateVersionOptions{Source: "s3://a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetAlias(ctx, "a", "production", "1"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetAlias(ctx, "a", "production", "2"); err != nil {
		t.Fatal(err)
	}
	v, err := c.GetVersionByAlias(ctx, "a", "production")
	if err != nil || v.Version != "2" || len(v.Aliases) != 1 || v.Aliases[0] != "production" {
		t.Fatalf("alias production = %+v, %v; want version 2", v, err)
	}
	m, _ := c.GetRegisteredModel(ctx, "a")
	if len(m.Aliases) != 1 || m.Aliases[0] != (registry.Alias{Alias: "production", Version: "2"}) {
		t.Fatalf("model aliases = %v", m.Aliases)
	}
	if err := c.SetModelVersionTag(ctx, "a", "2", "mlcd.git_sha", "abc"); err != nil {
		t.Fatal(err)
	}
	v, _ = c.GetModelVersion(ctx, "a", "2")
	if val, ok := v.Tag("mlcd.git_sha"); !ok || val != "abc" {
		t.Fatalf("tag = %q %v", val, ok)
	}
	if err := c.DeleteModelVersionTag(ctx, "a", "2", "mlcd.git_sha"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteAlias(ctx, "a", "production"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetVersionByAlias(ctx, "a", "production"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("deleted alias: %v", err)
	}
	if err := c.SetRegisteredModelTag(ctx, "a", "owner", "ml"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRegisteredModelTag(ctx, "a", "owner"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TransitionStage(ctx, "a", "1", "Production", false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TransitionStage(ctx, "a", "2", "Production", true); err != nil {
		t.Fatal(err)
	}
	v1, _ := c.GetModelVersion(ctx, "a", "1")
	if v1.CurrentStage != "Archived" {
		t.Fatalf("archive_existing_versions left version 1 in %s", v1.CurrentStage)
	}
	latest, err := c.GetLatestVersions(ctx, "a", "Production")
	if err != nil || len(latest) != 1 || latest[0].Version != "2" {
		t.Fatalf("latest production = %v, %v", latest, err)
	}
}

func TestPendingUntilArtifactsUploaded(t *testing.T) {
	r := registrytest.Start(t, registry.ServerOptions{})
	ctx := context.Background()
	c := r.Client
	if _, err := c.CreateRegisteredModel(ctx, "p", "", nil); err != nil {
		t.Fatal(err)
	}
	v, err := c.CreateModelVersion(ctx, "p", registry.CreateVersionOptions{Source: "mlflow-artifacts:/models/p/1"})
	if err != nil || v.Status != registry.StatusPending {
		t.Fatalf("version = %+v, %v; want PENDING_REGISTRATION", v, err)
	}
	if err := c.UploadArtifact(ctx, "models/p/1/MLmodel", []byte("flavors: {}")); err != nil {
		t.Fatal(err)
	}
	v, err = c.GetModelVersion(ctx, "p", "1")
	if err != nil || v.Status != registry.StatusReady {
		t.Fatalf("after upload = %+v, %v; want READY", v, err)
	}
	data, err := c.DownloadArtifact(ctx, "models/p/1/MLmodel")
	if err != nil || string(data) != "flavors: {}" {
		t.Fatalf("download = %q, %v", data, err)
	}
	files, err := c.ListArtifacts(ctx, "models/p/1")
	if err != nil || len(files) != 1 || files[0].Path != "models/p/1/MLmodel" {
		t.Fatalf("list = %v, %v", files, err)
	}
	for _, bad := range []string{"../escape", "models/../../escape"} {
		status, _ := rawCall(t, "PUT", r.URL+"/api/2.0/mlflow-artifacts/artifacts/"+bad, "x")
		if status < 400 {
			t.Errorf("PUT %s: status %d, want refusal", bad, status)
		}
	}
}

func TestOversizeBodyIsRefused(t *testing.T) {
	r := registrytest.Start(t, registry.ServerOptions{MaxBodyBytes: 1024})
	status, body := rawCall(t, "POST", r.URL+"/api/2.0/mlflow/registered-models/create", `{"name":"`+strings.Repeat("x", 4096)+`"}`)
	if status != http.StatusRequestEntityTooLarge || body["error_code"] != "INVALID_PARAMETER_VALUE" {
		t.Fatalf("oversize body: %d %v", status, body)
	}
}
