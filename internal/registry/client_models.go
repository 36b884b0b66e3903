package registry

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// SearchOptions page through search endpoints.
type SearchOptions struct {
	Filter     string
	MaxResults int
	OrderBy    []string
	PageToken  string
}

func (o SearchOptions) query() url.Values {
	q := url.Values{}
	if o.Filter != "" {
		q.Set("filter", o.Filter)
	}
	if o.MaxResults > 0 {
		q.Set("max_results", strconv.Itoa(o.MaxResults))
	}
	for _, ob := range o.OrderBy {
		q.Add("order_by", ob)
	}
	if o.PageToken != "" {
		q.Set("page_token", o.PageToken)
	}
	return q
}

// CreateRegisteredModel creates a model; ErrAlreadyExists if it exists.
func (c *Client) CreateRegisteredModel(ctx context.Context, name, description string, tags []Tag) (*RegisteredModel, error) {
	var out modelReply
	in := map[string]any{"name": name, "description": description, "tags": tags}
	if err := c.send(ctx, http.MethodPost, "registered-models/create", in, &out); err != nil {
		return nil, err
	}
	return must(out.RegisteredModel)
}

// GetRegisteredModel returns a model; ErrNotFound if it does not exist.
func (c *Client) GetRegisteredModel(ctx context.Context, name string) (*RegisteredModel, error) {
	var out modelReply
	if err := c.get(ctx, "registered-models/get", url.Values{"name": {name}}, &out); err != nil {
		return nil, err
	}
	return must(out.RegisteredModel)
}

// SearchRegisteredModels returns one page of models and the next page token.
func (c *Client) SearchRegisteredModels(ctx context.Context, o SearchOptions) ([]RegisteredModel, string, error) {
	var out modelsReply
	if err := c.get(ctx, "registered-models/search", o.query(), &out); err != nil {
		return nil, "", err
	}
	return out.RegisteredModels, out.NextPageToken, nil
}

// UpdateRegisteredModel sets a model's description.
func (c *Client) UpdateRegisteredModel(ctx context.Context, name, description string) (*RegisteredModel, error) {
	var out modelReply
	in := map[string]any{"name": name, "description": description}
	if err := c.send(ctx, http.MethodPatch, "registered-models/update", in, &out); err != nil {
		return nil, err
	}
	return must(out.RegisteredModel)
}

// RenameRegisteredModel renames a model with all its versions.
func (c *Client) RenameRegisteredModel(ctx context.Context, name, newName string) (*RegisteredModel, error) {
	var out modelReply
	in := map[string]any{"name": name, "new_name": newName}
	if err := c.send(ctx, http.MethodPost, "registered-models/rename", in, &out); err != nil {
		return nil, err
	}
	return must(out.RegisteredModel)
}

// DeleteRegisteredModel deletes a model and its versions.
func (c *Client) DeleteRegisteredModel(ctx context.Context, name string) error {
	return c.send(ctx, http.MethodDelete, "registered-models/delete", map[string]any{"name": name}, nil)
}

// SetRegisteredModelTag sets a tag on a model.
func (c *Client) SetRegisteredModelTag(ctx context.Context, name, key, value string) error {
	return c.send(ctx, http.MethodPost, "registered-models/set-tag", map[string]any{"name": name, "key": key, "value": value}, nil)
}

// DeleteRegisteredModelTag removes a tag from a model.
func (c *Client) DeleteRegisteredModelTag(ctx context.Context, name, key string) error {
	return c.send(ctx, http.MethodDelete, "registered-models/delete-tag", map[string]any{"name": name, "key": key}, nil)
}

// GetLatestVersions returns the latest version per stage (all stages when
// none are given).
func (c *Client) GetLatestVersions(ctx context.Context, name string, stages ...string) ([]ModelVersion, error) {
	var out versionsReply
	in := map[string]any{"name": name}
	if len(stages) > 0 {
		in["stages"] = stages
	}
	if err := c.send(ctx, http.MethodPost, "registered-models/get-latest-versions", in, &out); err != nil {
		return nil, err
	}
	return out.ModelVersions, nil
}

// SetAlias points alias at version.
func (c *Client) SetAlias(ctx context.Context, name, alias, version string) error {
	return c.send(ctx, http.MethodPost, "registered-models/alias", map[string]any{"name": name, "alias": alias, "version": version}, nil)
}

// DeleteAlias removes an alias.
func (c *Client) DeleteAlias(ctx context.Context, name, alias string) error {
	return c.send(ctx, http.MethodDelete, "registered-models/alias", map[string]any{"name": name, "alias": alias}, nil)
}

// GetVersionByAlias returns the version an alias points at. MLflow answers a
// missing alias with INVALID_PARAMETER_VALUE; this returns an error that
// also matches ErrNotFound then.
func (c *Client) GetVersionByAlias(ctx context.Context, name, alias string) (*ModelVersion, error) {
	var out versionReply
	if err := c.get(ctx, "registered-models/alias", url.Values{"name": {name}, "alias": {alias}}, &out); err != nil {
		if e, ok := err.(*Error); ok && e.Code == CodeInvalidParam {
			return nil, &aliasNotFound{api: e}
		}
		return nil, err
	}
	return must(out.ModelVersion)
}

// aliasNotFound is MLflow's INVALID_PARAMETER_VALUE for a missing alias,
// which callers treat as not found.
type aliasNotFound struct{ api *Error }

func (a *aliasNotFound) Error() string { return a.api.Error() }
func (a *aliasNotFound) Unwrap() error { return a.api }
func (a *aliasNotFound) Is(target error) bool {
	return target == ErrNotFound
}

// CreateWebhook subscribes url to registry events (MLflow's webhooks API);
// secret signs the deliveries.
func (c *Client) CreateWebhook(ctx context.Context, name, url, secret string, events []WebhookEvent) (*Webhook, error) {
	var out webhookReply
	in := map[string]any{"name": name, "url": url, "secret": secret, "events": events, "status": "ACTIVE"}
	if err := c.send(ctx, http.MethodPost, "webhooks", in, &out); err != nil {
		return nil, err
	}
	return must(out.Webhook)
}

// ListWebhooks lists the subscriptions.
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	var out webhooksReply
	if err := c.get(ctx, "webhooks", nil, &out); err != nil {
		return nil, err
	}
	return out.Webhooks, nil
}

// DeleteWebhook removes a subscription.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	return c.send(ctx, http.MethodDelete, "webhooks/"+url.PathEscape(id), nil, nil)
}
