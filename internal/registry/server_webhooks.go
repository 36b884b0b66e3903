package registry

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Registry webhooks as MLflow 3.x has them: subscriptions made through
// POST/GET/DELETE /api/2.0/mlflow/webhooks[/{id}] receive a POST of
// {entity, action, timestamp, data} for registry events, signed like
// MLflow's (X-MLflow-Signature: v1,<base64 HMAC-SHA256 of
// "{delivery_id}.{timestamp}.{payload}">), with retries on failure. The
// secret is write-only: never returned.

// WebhookEvent is an (entity, action) pair, e.g. MODEL_VERSION/CREATED.
type WebhookEvent struct {
	Entity string `json:"entity"`
	Action string `json:"action"`
}

// Webhook is a subscription.
type Webhook struct {
	WebhookID            string         `json:"webhook_id"`
	Name                 string         `json:"name"`
	URL                  string         `json:"url"`
	Events               []WebhookEvent `json:"events"`
	Description          string         `json:"description,omitempty"`
	Status               string         `json:"status"`
	CreationTimestamp    int64          `json:"creation_timestamp"`
	LastUpdatedTimestamp int64          `json:"last_updated_timestamp"`
	secret               string
}

type webhookReply struct {
	Webhook *Webhook `json:"webhook"`
}

type webhooksReply struct {
	Webhooks []Webhook `json:"webhooks"`
}

func (s *Server) createWebhook(r *request) (any, error) {
	var in struct {
		Name        string         `json:"name" required:"true"`
		URL         string         `json:"url" required:"true"`
		Events      []WebhookEvent `json:"events"`
		Description string         `json:"description"`
		Secret      string         `json:"secret"`
		Status      string         `json:"status"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if u, err := url.Parse(in.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, apiErr(CodeInvalidParam, "Invalid webhook URL %q: http(s)://host/path expected", in.URL)
	}
	if len(in.Events) == 0 {
		return nil, apiErr(CodeInvalidParam, "Missing value for required parameter 'events'.")
	}
	status := strings.ToUpper(in.Status)
	if status == "" {
		status = "ACTIVE"
	}
	if status != "ACTIVE" && status != "DISABLED" {
		return nil, apiErr(CodeInvalidParam, "Invalid webhook status %q: ACTIVE or DISABLED", in.Status)
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	now := s.ms()
	w := &Webhook{WebhookID: hex.EncodeToString(b), Name: in.Name, URL: in.URL, Events: in.Events, Description: in.Description, Status: status, CreationTimestamp: now, LastUpdatedTimestamp: now}
	events, _ := json.Marshal(in.Events)
	if _, err := s.store.db.ExecContext(r.Context(), `INSERT INTO webhooks (webhook_id, name, url, events, description, secret, status, creation_timestamp, last_updated_timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.WebhookID, w.Name, w.URL, string(events), w.Description, in.Secret, w.Status, now, now); err != nil {
		return nil, err
	}
	return webhookReply{Webhook: w}, nil
}

func (s *Server) listWebhooks(r *request) (any, error) {
	hooks, err := s.webhooks(r.Context())
	if err != nil {
		return nil, err
	}
	if hooks == nil {
		hooks = []Webhook{}
	}
	return webhooksReply{Webhooks: hooks}, nil
}

func (s *Server) webhooks(ctx context.Context) ([]Webhook, error) {
	rows, err := s.store.db.QueryContext(ctx, `SELECT webhook_id, name, url, events, description, secret, status, creation_timestamp, last_updated_timestamp FROM webhooks ORDER BY creation_timestamp`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Webhook
	for rows.Next() {
		var w Webhook
		var events string
		if err := rows.Scan(&w.WebhookID, &w.Name, &w.URL, &events, &w.Description, &w.secret, &w.Status, &w.CreationTimestamp, &w.LastUpdatedTimestamp); err != nil {
			return nil, err
		}
		_ = json.Unmarshal([]byte(events), &w.Events)
		out = append(out, w)
	}
	return out, rows.Err()
}

func (s *Server) getWebhook(r *request) (any, error) {
	hooks, err := s.webhooks(r.Context())
	if err != nil {
		return nil, err
	}
	for _, w := range hooks {
		if w.WebhookID == r.pathID {
			return webhookReply{Webhook: &w}, nil
		}
	}
	return nil, apiErr(CodeNotFound, "Webhook with ID %s not found", r.pathID)
}

func (s *Server) deleteWebhook(r *request) (any, error) {
	res, err := s.store.db.ExecContext(r.Context(), `DELETE FROM webhooks WHERE webhook_id = ?`, r.pathID)
	if err := affected(res, err, "Webhook with ID %s not found", r.pathID); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// event is what a successful route tells subscribers.
func eventOf(route string, r *request, out any) (entity, action string, data map[string]any) {
	var body map[string]any
	_ = json.Unmarshal(r.body, &body)
	switch route {
	case "POST registered-models/create":
		return "registered_model", "created", map[string]any{"name": body["name"]}
	case "POST model-versions/create":
		if v, ok := out.(versionReply); ok && v.ModelVersion != nil {
			mv := v.ModelVersion
			tags := map[string]string{}
			for _, t := range mv.Tags {
				tags[t.Key] = t.Value
			}
			return "model_version", "created", map[string]any{"name": mv.Name, "version": mv.Version, "source": mv.Source, "run_id": mv.RunID, "tags": tags, "description": mv.Description}
		}
	case "POST model-versions/set-tag":
		return "model_version_tag", "set", map[string]any{"name": body["name"], "version": body["version"], "key": body["key"], "value": body["value"]}
	case "DELETE model-versions/delete-tag":
		return "model_version_tag", "deleted", map[string]any{"name": body["name"], "version": body["version"], "key": body["key"]}
	case "POST registered-models/alias":
		return "model_version_alias", "created", map[string]any{"name": body["name"], "alias": body["alias"], "version": body["version"]}
	case "DELETE registered-models/alias":
		return "model_version_alias", "deleted", map[string]any{"name": body["name"], "alias": body["alias"]}
	}
	return "", "", nil
}

// notify delivers an event to every active subscriber of it, in the
// background, with retries; it never blocks the request.
func (s *Server) notify(entity, action string, data map[string]any) {
	if entity == "" {
		return
	}
	hooks, err := s.webhooks(context.Background())
	if err != nil {
		s.opts.Logger.Error("list webhooks", "error", err.Error())
		return
	}
	payload, _ := json.Marshal(map[string]any{"entity": entity, "action": action, "timestamp": s.now().UTC().Format(time.RFC3339Nano), "data": data})
	for _, w := range hooks {
		if w.Status != "ACTIVE" || !subscribed(w.Events, entity, action) {
			continue
		}
		go s.deliver(w, payload)
	}
}

func subscribed(events []WebhookEvent, entity, action string) bool {
	for _, e := range events {
		if strings.EqualFold(e.Entity, entity) && strings.EqualFold(e.Action, action) {
			return true
		}
	}
	return false
}

var webhookClient = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (s *Server) deliver(w Webhook, payload []byte) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	backoff := 500 * time.Millisecond
	for attempt := 0; attempt < 4; attempt++ {
		ts := strconv.FormatInt(s.now().Unix(), 10)
		req, err := http.NewRequest(http.MethodPost, w.URL, bytes.NewReader(payload))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(HeaderDeliveryID, id)
		req.Header.Set(HeaderTimestamp, ts)
		if w.secret != "" {
			req.Header.Set(HeaderSignature, SignWebhook(w.secret, id, ts, payload))
		}
		resp, err := webhookClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return
			}
			if resp.StatusCode != 429 && resp.StatusCode < 500 {
				s.opts.Logger.Info("webhook refused", "webhook", w.Name, "status", resp.StatusCode)
				return
			}
		}
		time.Sleep(backoff)
		backoff *= 2
	}
	s.opts.Logger.Info("webhook delivery failed", "webhook", w.Name)
}

// MLflow's webhook delivery headers.
const (
	HeaderSignature  = "X-MLflow-Signature"
	HeaderDeliveryID = "X-MLflow-Delivery-Id"
	HeaderTimestamp  = "X-MLflow-Timestamp"
)

// SignWebhook is MLflow's webhook signature, which deliveries carry and
// receivers check: "v1," + base64(HMAC-SHA256 of
// "{delivery_id}.{timestamp}.{payload}").
func SignWebhook(secret, deliveryID, timestamp string, payload []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%s.%s.", deliveryID, timestamp)
	mac.Write(payload)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
