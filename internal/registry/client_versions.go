package registry

import (
	"context"
	"net/http"
	"net/url"
)

// CreateVersionOptions describe a new model version.
type CreateVersionOptions struct {
	Source      string
	RunID       string
	RunLink     string
	Description string
	Tags        []Tag
}

// CreateModelVersion registers a new version of model name.
func (c *Client) CreateModelVersion(ctx context.Context, name string, o CreateVersionOptions) (*ModelVersion, error) {
	var out versionReply
	in := map[string]any{"name": name, "source": o.Source}
	if o.RunID != "" {
		in["run_id"] = o.RunID
	}
	if o.RunLink != "" {
		in["run_link"] = o.RunLink
	}
	if o.Description != "" {
		in["description"] = o.Description
	}
	if len(o.Tags) > 0 {
		in["tags"] = o.Tags
	}
	if err := c.send(ctx, http.MethodPost, "model-versions/create", in, &out); err != nil {
		return nil, err
	}
	return must(out.ModelVersion)
}

// GetModelVersion returns version (MLflow's number) of model name.
func (c *Client) GetModelVersion(ctx context.Context, name, version string) (*ModelVersion, error) {
	var out versionReply
	if err := c.get(ctx, "model-versions/get", url.Values{"name": {name}, "version": {version}}, &out); err != nil {
		return nil, err
	}
	return must(out.ModelVersion)
}

// SearchModelVersions returns one page of versions and the next page token.
func (c *Client) SearchModelVersions(ctx context.Context, o SearchOptions) ([]ModelVersion, string, error) {
	var out versionsReply
	if err := c.get(ctx, "model-versions/search", o.query(), &out); err != nil {
		return nil, "", err
	}
	return out.ModelVersions, out.NextPageToken, nil
}

// AllModelVersions follows next_page_token until the last page.
func (c *Client) AllModelVersions(ctx context.Context, o SearchOptions) ([]ModelVersion, error) {
	var all []ModelVersion
	for {
		page, next, err := c.SearchModelVersions(ctx, o)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		o.PageToken = next
	}
}

// UpdateModelVersion sets a version's description.
func (c *Client) UpdateModelVersion(ctx context.Context, name, version, description string) (*ModelVersion, error) {
	var out versionReply
	in := map[string]any{"name": name, "version": version, "description": description}
	if err := c.send(ctx, http.MethodPatch, "model-versions/update", in, &out); err != nil {
		return nil, err
	}
	return must(out.ModelVersion)
}

// DeleteModelVersion deletes a version.
func (c *Client) DeleteModelVersion(ctx context.Context, name, version string) error {
	return c.send(ctx, http.MethodDelete, "model-versions/delete", map[string]any{"name": name, "version": version}, nil)
}

// SetModelVersionTag sets a tag on a version.
func (c *Client) SetModelVersionTag(ctx context.Context, name, version, key, value string) error {
	return c.send(ctx, http.MethodPost, "model-versions/set-tag", map[string]any{"name": name, "version": version, "key": key, "value": value}, nil)
}

// DeleteModelVersionTag removes a tag from a version.
func (c *Client) DeleteModelVersionTag(ctx context.Context, name, version, key string) error {
	return c.send(ctx, http.MethodDelete, "model-versions/delete-tag", map[string]any{"name": name, "version": version, "key": key}, nil)
}

// TransitionStage moves a version to stage (None, Staging, Production,
// Archived), optionally archiving the other versions in that stage.
func (c *Client) TransitionStage(ctx context.Context, name, version, stage string, archiveExisting bool) (*ModelVersion, error) {
	var out versionReply
	in := map[string]any{"name": name, "version": version, "stage": stage, "archive_existing_versions": archiveExisting}
	if err := c.send(ctx, http.MethodPost, "model-versions/transition-stage", in, &out); err != nil {
		return nil, err
	}
	return must(out.ModelVersion)
}

// GetDownloadURI returns where a version's artifacts are stored.
func (c *Client) GetDownloadURI(ctx context.Context, name, version string) (string, error) {
	var out downloadURIReply
	if err := c.get(ctx, "model-versions/get-download-uri", url.Values{"name": {name}, "version": {version}}, &out); err != nil {
		return "", err
	}
	return out.ArtifactURI, nil
}
