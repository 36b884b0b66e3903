package webhook

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/registry"
)

// MLflowSecretKey is the key of argocd-secret holding the secret of the
// registry webhook (MLflow's webhook secret for the subscription).
const MLflowSecretKey = "webhook.mlflow.secret"

// maxAge bounds how old a signed delivery may be (replays are refused).
const maxAge = 5 * time.Minute

// MLflowEvent is a registry webhook delivery: {entity, action, timestamp,
// data}; data names the model.
type MLflowEvent struct {
	Entity string         `json:"entity"`
	Action string         `json:"action"`
	Data   map[string]any `json:"data"`
}

// ServeMLflow handles a registry webhook: a verified event about a model
// refreshes the apps deploying it (their gate may have refused a version
// that now exists), at once instead of at the next poll.
func (h *Handler) ServeMLflow(w http.ResponseWriter, r *http.Request) {
	res, err := h.serveMLflow(r)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := http.StatusInternalServerError
		if he, ok := err.(*httpError); ok {
			status = he.status
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error(), "code": status})
		return
	}
	_ = json.NewEncoder(w).Encode(res.Answer())
}

func (h *Handler) serveMLflow(r *http.Request) (*Result, error) {
	ctx := r.Context()
	secrets, maxBytes, err := h.settings(ctx)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBytes))
	if err != nil {
		return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("payload over %d bytes", maxBytes)}
	}
	secret := secrets[MLflowSecretKey]
	if secret == "" {
		return nil, &httpError{http.StatusUnauthorized, "no registry webhook secret configured (" + MLflowSecretKey + " in " + SecretName + "): deliveries are not accepted unsigned"}
	}
	if err := verifyMLflow(secret, r.Header, body, time.Now()); err != nil {
		return nil, err
	}
	if !h.firstDelivery(r.Header.Get(registry.HeaderDeliveryID)) {
		return nil, &httpError{http.StatusConflict, "delivery " + r.Header.Get(registry.HeaderDeliveryID) + " was already received"}
	}
	var ev MLflowEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, badPayload(err)
	}
	model, _ := ev.Data["name"].(string)
	if model == "" {
		return &Result{Refreshed: []string{}}, nil
	}
	return h.refreshModel(ctx, model)
}

func verifyMLflow(secret string, hd http.Header, body []byte, now time.Time) error {
	id, ts, sig := hd.Get(registry.HeaderDeliveryID), hd.Get(registry.HeaderTimestamp), hd.Get(registry.HeaderSignature)
	if id == "" || ts == "" || sig == "" {
		return &httpError{http.StatusUnauthorized, "missing " + registry.HeaderSignature + ", " + registry.HeaderDeliveryID + " or " + registry.HeaderTimestamp}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > maxAge {
		return &httpError{http.StatusUnauthorized, "stale or invalid " + registry.HeaderTimestamp}
	}
	want := registry.SignWebhook(secret, id, ts, body)
	if !hmac.Equal([]byte(want), []byte(strings.TrimSpace(sig))) {
		return &httpError{http.StatusUnauthorized, "wrong " + registry.HeaderSignature}
	}
	return nil
}

// refreshModel refreshes every app governed by model.
func (h *Handler) refreshModel(ctx context.Context, model string) (*Result, error) {
	return h.refreshWhere(ctx, func(a *v1alpha1.Application) bool {
		return a.Annotations[v1alpha1.AppAnnotationModel] == model
	}, false)
}

// firstDelivery records a delivery id and reports whether it is new
// within maxAge (older ones are refused by their timestamp anyway).
func (h *Handler) firstDelivery(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for k, t := range h.deliveries {
		if now.Sub(t) > maxAge {
			delete(h.deliveries, k)
		}
	}
	if _, seen := h.deliveries[id]; seen {
		return false
	}
	h.deliveries[id] = now
	return true
}
