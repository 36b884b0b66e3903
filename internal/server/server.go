// Package server is mlcd's HTTP API: Applications (list, get, diff, sync,
// refresh, delete, a live stream), and /metrics. It never reaches into the
// controller: it reads objects and writes what a user would — Argo CD's
// `operation` field to ask for a sync, the refresh annotation — and the
// controller acts on them. Every route is authenticated (bearer tokens with
// roles and project scopes) unless the server runs --insecure-no-auth on
// loopback. Errors have one JSON shape: {"error": "...", "code": N}.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/httpguard"
	"github.com/mlcd-dev/mlcd/internal/server/ui"
)

// Differ predicts what a sync of an app would do (controller.Diff).
type Differ interface {
	Diff(ctx context.Context, app *v1alpha1.Application) ([]apply.Result, error)
}

// Options configure a Server.
type Options struct {
	// Client reads and writes Applications (reads may come from a cache).
	Client client.Client
	// Watch starts a watch of Applications for the live stream.
	Watch func(ctx context.Context) (watch.Interface, error)
	// Differ computes diffs; nil answers 501.
	Differ Differ
	// Namespace is the control-plane namespace: apps without
	// ?appNamespace= are looked up there.
	Namespace string
	// AppNamespaces are globs of further namespaces whose Applications
	// the API serves (as the controller's --app-namespaces).
	AppNamespaces []string
	// Auth checks bearer tokens; nil with InsecureNoAuth serves everyone
	// as admin.
	Auth *Auth
	// InsecureNoAuth turns authentication off; only allowed on loopback.
	InsecureNoAuth bool
	// Metrics is served at /metrics without authentication (nil: none).
	Metrics http.Handler
	// Webhook is served at POST /api/webhook, Argo CD's path; it checks
	// the providers' signatures itself, not bearer tokens (nil: none).
	Webhook http.Handler
	// RegistryWebhook is served at POST /api/webhook/mlflow: signed MLflow
	// registry events (nil: none).
	RegistryWebhook http.Handler
	// MaxBodyBytes bounds request bodies (default 1 MiB).
	MaxBodyBytes int64
	// Log is where requests that fail with 5xx are logged (never bodies).
	Log *slog.Logger
	// APIReader reads past the cache (Events, Pods); default Client.
	APIReader client.Reader
	// Revisions reads commit metadata (nil: none).
	Revisions Revisions
	// Registry is the model registry the model pages read (nil: none).
	Registry ModelRegistry
	// AllowedHosts are Host names besides IP addresses and localhost that
	// a request on a loopback address may carry (httpguard).
	AllowedHosts []string
}

// Server is the HTTP API.
type Server struct {
	o       Options
	mux     *http.ServeMux
	streams streamCounts
}

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Client == nil {
		return nil, errors.New("server: a client is required")
	}
	if o.Auth == nil && !o.InsecureNoAuth {
		return nil, errors.New("server: no tokens configured: give --tokens-file or the mlcd-api-tokens Secret, or --insecure-no-auth on loopback")
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Namespace == "" {
		o.Namespace = v1alpha1.DefaultControlPlaneNamespace
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{o: o, mux: http.NewServeMux()}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.handle("GET /api/v1/applications", roleReadonly, s.listApps)
	s.handle("GET /api/v1/applications/{name}", roleReadonly, s.getApp)
	s.handle("GET /api/v1/applications/{name}/diff", roleReadonly, s.diffApp)
	s.handle("POST /api/v1/applications/{name}/sync", roleAdmin, s.syncApp)
	s.handle("POST /api/v1/applications/{name}/refresh", roleAdmin, s.refreshApp)
	s.handle("DELETE /api/v1/applications/{name}", roleAdmin, s.deleteApp)
	s.handle("GET /api/v1/applications/{name}/rollout", roleReadonly, s.getRollout)
	s.handle("GET /api/v1/applications/{name}/events", roleReadonly, s.appEvents)
	s.handle("GET /api/v1/applications/{name}/lineage", roleReadonly, s.lineage)
	s.handle("GET /api/v1/applications/{name}/revisions/{revision}/metadata", roleReadonly, s.revisionMetadata)
	s.handle("POST /api/v1/applications/{name}/rollback", roleAdmin, s.rollbackApp)
	s.handle("GET /api/v1/models", roleReadonly, s.models)
	s.handle("GET /api/v1/models/{name}", roleReadonly, s.models)
	s.handle("GET /api/v1/applicationsets", roleReadonly, s.listAppSets)
	s.handle("GET /api/v1/applicationsets/{name}", roleReadonly, s.listAppSets)
	s.handle("POST /api/v1/applications/{name}/rollout/{action}", roleAdmin, s.rolloutAction)
	s.handle("GET /api/v1/stream/applications", roleReadonly, s.streamApps)
	s.handle("GET /api/v1/session", roleReadonly, s.session)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if s.o.Metrics != nil {
		s.mux.Handle("GET /metrics", s.o.Metrics)
	}
	if s.o.Webhook != nil {
		s.mux.Handle("POST /api/webhook", s.o.Webhook)
	}
	if s.o.RegistryWebhook != nil {
		s.mux.Handle("POST /api/webhook/mlflow", s.o.RegistryWebhook)
	}
	// The web UI (no token: it asks for one and calls the API with it).
	s.mux.Handle("GET /{$}", ui.Handler())
	s.mux.Handle("GET /assets/", ui.Handler())
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
}

// Handler is the API as an http.Handler, behind httpguard (no
// cross-site POST, no DNS rebinding); the webhooks are exempt: their
// signatures authenticate them, and providers may post other types.
func (s *Server) Handler() http.Handler {
	return httpguard.Wrap(s.mux, httpguard.Options{AllowedHosts: s.o.AllowedHosts, Exempt: func(r *http.Request) bool {
		return r.URL.Path == "/api/webhook" || r.URL.Path == "/api/webhook/mlflow"
	}})
}

// handlerFunc is a route: it returns a value to answer as JSON, or an
// error (an *apiError for a status other than 500).
type handlerFunc func(w http.ResponseWriter, r *http.Request, who *Identity) (any, error)

func (s *Server) handle(pattern string, need role, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.o.MaxBodyBytes {
			writeError(w, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", s.o.MaxBodyBytes)})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
		who, err := s.authenticate(r)
		if err != nil {
			writeError(w, err)
			return
		}
		if !who.Role.allows(need) {
			writeError(w, &apiError{http.StatusForbidden, fmt.Sprintf("token %s (%s) may not do this: it needs the %s role", who.Name, who.Role, need)})
			return
		}
		ctx, cancel := r.Context(), context.CancelFunc(func() {})
		if !strings.Contains(pattern, "/stream/") {
			ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		}
		defer cancel()
		out, err := h(w, r.WithContext(ctx), who)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				s.o.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
			}
			writeError(w, err)
			return
		}
		if out != nil {
			writeJSON(w, http.StatusOK, out)
		}
	})
}

// apiError is an error with its HTTP status.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		status = ae.status
	case errors.As(err, &mbe):
		status = http.StatusRequestEntityTooLarge
	}
	writeJSON(w, status, map[string]any{"error": err.Error(), "code": status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// served reports whether apps of namespace ns are the API's.
func (s *Server) served(ns string) bool {
	return ns == s.o.Namespace || v1alpha1.GlobAny(s.o.AppNamespaces, ns)
}
