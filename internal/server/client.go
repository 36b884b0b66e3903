package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// Client talks to the API (the CLI, tests).
type Client struct {
	Base  string
	Token string
	HTTP  *http.Client
}

// NewClient returns a client of the API at base.
func NewClient(base, token string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Timeout: 90 * time.Second}}
}

// Error is an error answered by the API.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if in != nil || method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("mlcd API at %s: %w (is `mlcd up` or `mlcd server` running? --server or MLCD_SERVER)", c.Base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// appPath is the route of an app named "name" or "namespace/name".
func appPath(name string, suffix string) string {
	p := "/api/v1/applications/" + url.PathEscape(name) + suffix
	if ns, n, ok := strings.Cut(name, "/"); ok {
		p = "/api/v1/applications/" + url.PathEscape(n) + suffix + "?appNamespace=" + url.QueryEscape(ns)
	}
	return p
}

// ListApps returns every app the token sees, following pages.
func (c *Client) ListApps(ctx context.Context, project, search string) ([]v1alpha1.Application, error) {
	var all []v1alpha1.Application
	cont := ""
	for {
		q := url.Values{}
		if project != "" {
			q.Set("project", project)
		}
		if search != "" {
			q.Set("search", search)
		}
		if cont != "" {
			q.Set("continue", cont)
		}
		var page AppList
		if err := c.do(ctx, http.MethodGet, "/api/v1/applications?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.Continue == "" {
			return all, nil
		}
		cont = page.Continue
	}
}

// GetApp returns one app.
func (c *Client) GetApp(ctx context.Context, name string) (*v1alpha1.Application, error) {
	app := &v1alpha1.Application{}
	return app, c.do(ctx, http.MethodGet, appPath(name, ""), nil, app)
}

// Diff returns what a sync of the app would change.
func (c *Client) Diff(ctx context.Context, name string) (*DiffResult, error) {
	out := &DiffResult{}
	return out, c.do(ctx, http.MethodGet, appPath(name, "/diff"), nil, out)
}

// Sync asks for a sync of the app.
func (c *Client) Sync(ctx context.Context, name string, prune bool) (*v1alpha1.Application, error) {
	app := &v1alpha1.Application{}
	return app, c.do(ctx, http.MethodPost, appPath(name, "/sync"), SyncRequest{Prune: prune}, app)
}

// Refresh asks for a fetch of the app's repository now.
func (c *Client) Refresh(ctx context.Context, name string) (*v1alpha1.Application, error) {
	app := &v1alpha1.Application{}
	return app, c.do(ctx, http.MethodPost, appPath(name, "/refresh"), nil, app)
}

// Delete deletes the app (with its resources unless cascade is false).
func (c *Client) Delete(ctx context.Context, name string, cascade bool) error {
	p := appPath(name, "")
	sep := "?"
	if strings.Contains(p, "?") {
		sep = "&"
	}
	return c.do(ctx, http.MethodDelete, p+sep+"cascade="+fmt.Sprint(cascade), nil, nil)
}

// Rollout returns the app's ModelRollout.
func (c *Client) Rollout(ctx context.Context, name string) (*v1alpha1.ModelRollout, error) {
	mr := &v1alpha1.ModelRollout{}
	return mr, c.do(ctx, http.MethodGet, appPath(name, "/rollout"), nil, mr)
}

// RolloutAction asks for promote, abort or retry of the app's rollout.
func (c *Client) RolloutAction(ctx context.Context, name, action string) (*v1alpha1.ModelRollout, error) {
	mr := &v1alpha1.ModelRollout{}
	return mr, c.do(ctx, http.MethodPost, appPath(name, "/rollout/"+action), nil, mr)
}

// Rollback reverts, in Git, the newest commit that changed what the app
// deploys, with reason in the revert's message.
func (c *Client) Rollback(ctx context.Context, name, reason string) (*RollbackResult, error) {
	out := &RollbackResult{}
	return out, c.do(ctx, http.MethodPost, appPath(name, "/rollback"), RollbackRequest{Reason: reason}, out)
}

// AppSet is an ApplicationSet with the apps it generated.
type AppSet struct {
	v1alpha1.ApplicationSet
	Applications []string `json:"applications"`
}

// ListAppSets returns the ApplicationSets.
func (c *Client) ListAppSets(ctx context.Context) ([]AppSet, error) {
	var out struct {
		Items []AppSet `json:"items"`
	}
	return out.Items, c.do(ctx, http.MethodGet, "/api/v1/applicationsets", nil, &out)
}

// GetAppSet returns one ApplicationSet.
func (c *Client) GetAppSet(ctx context.Context, name string) (*AppSet, error) {
	out := &AppSet{}
	return out, c.do(ctx, http.MethodGet, "/api/v1/applicationsets/"+url.PathEscape(name), nil, out)
}
