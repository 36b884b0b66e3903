package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

const artifactsPrefix = "/api/2.0/mlflow-artifacts/artifacts"

func artifactURL(base, p string) string {
	parts := strings.Split(strings.TrimLeft(p, "/"), "/")
	for i := range parts {
		parts[i] = url.PathEscape(parts[i])
	}
	return base + artifactsPrefix + "/" + strings.Join(parts, "/")
}

// UploadArtifact stores data at path through the server's artifact proxy.
func (c *Client) UploadArtifact(ctx context.Context, path string, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, artifactURL(c.base, path), bytes.NewReader(data))
	if err != nil {
		return err
	}
	_, err = c.raw(req)
	return err
}

// DownloadArtifact reads the file at path.
func (c *Client) DownloadArtifact(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, artifactURL(c.base, path), nil)
	if err != nil {
		return nil, err
	}
	return c.raw(req)
}

// ListArtifacts lists the directory at path ("" for the root).
func (c *Client) ListArtifacts(ctx context.Context, path string) ([]FileInfo, error) {
	var out filesReply
	u := c.base + artifactsPrefix
	if path != "" {
		u += "?" + url.Values{"path": {path}}.Encode()
	}
	if err := c.do(ctx, http.MethodGet, u, nil, &out); err != nil {
		return nil, err
	}
	return out.Files, nil
}

func (c *Client) raw(req *http.Request) ([]byte, error) {
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("registry %s %s: %w", req.Method, req.URL.Path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		if jsonErr := decodeError(data, e); jsonErr != nil {
			e.Message = strings.TrimSpace(string(data))
		}
		return nil, e
	}
	return data, nil
}
