// Package webhook turns Git push events into refreshes: it serves Argo
// CD's /api/webhook (GitHub, GitLab, Bitbucket Server and a generic JSON
// shape), verifies signatures with the secrets Argo CD keeps in the
// control-plane namespace's `argocd-secret`, and sets the refresh
// annotation on exactly the Applications whose repository, branch and
// (with `argocd.argoproj.io/manifest-generate-paths`) paths match. It
// writes nothing else; the controller does the rest.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// Argo CD's names.
const (
	SecretName = "argocd-secret"
	ConfigMap  = "argocd-cm"
	// PathsAnnotation limits the refreshes of an app to pushes that change
	// files under these paths (";"-separated; relative to the app's path,
	// or from the repository root when they start with "/").
	PathsAnnotation = v1alpha1.ManifestGeneratePathsAnnotation
)

// Options configure a Handler.
type Options struct {
	// Client reads Applications, argocd-secret and argocd-cm, and patches
	// the refresh annotation.
	Client client.Client
	// Namespace is the control-plane namespace.
	Namespace string
	// AppNamespaces are globs of further namespaces whose apps are served.
	AppNamespaces []string
	// MinInterval is the least time between two refreshes of one app
	// (default 1 s): a flood of pushes cannot flood the controller.
	MinInterval time.Duration
}

// Handler serves /api/webhook.
type Handler struct {
	o    Options
	mu   sync.Mutex
	last map[string]time.Time
	// deliveries are the registry deliveries seen within maxAge, by id:
	// a signed delivery replayed inside its freshness window is refused.
	deliveries map[string]time.Time
}

// New returns a Handler.
func New(o Options) *Handler {
	if o.MinInterval == 0 {
		o.MinInterval = time.Second
	}
	if o.Namespace == "" {
		o.Namespace = v1alpha1.DefaultControlPlaneNamespace
	}
	return &Handler{o: o, last: map[string]time.Time{}, deliveries: map[string]time.Time{}}
}

// Push is what a push event says, whatever its provider.
type Push struct {
	// URLs are the repository's URLs (web, clone over HTTPS and SSH).
	URLs []string
	// Branch is the pushed branch (or tag) name.
	Branch string
	// DefaultBranch, when known, is what HEAD means.
	DefaultBranch string
	// Changed are the files the push touched; nil when unknown (every
	// app of the repository is refreshed then).
	Changed []string
}

// Result says what a push did.
type Result struct {
	Refreshed []string `json:"refreshed"`
	// Fetch is the app refreshed only so the controller fetches the push:
	// no app's manifest-generate-paths named a changed file, and the
	// controller wakes the apps whose renders read one (a shared chart).
	Fetch string `json:"fetch,omitempty"`
	// Throttled apps were refreshed less than MinInterval ago.
	Throttled []string `json:"throttled,omitempty"`
}

type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res, err := h.serve(r)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := http.StatusInternalServerError
		var he *httpError
		if errors.As(err, &he) {
			status = he.status
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error(), "code": status})
		return
	}
	_ = json.NewEncoder(w).Encode(res.Answer())
}

// Answer is what the webhook tells its caller: counts, never the names of
// apps (a push's sender learns nothing about the fleet).
type Answer struct {
	Refreshed int `json:"refreshed"`
	Throttled int `json:"throttled,omitempty"`
	// Fetch: no app's paths covered the push, and one app of the
	// repository was refreshed so the controller fetches it.
	Fetch bool `json:"fetch,omitempty"`
}

// Answer is r as counts.
func (r *Result) Answer() Answer {
	return Answer{Refreshed: len(r.Refreshed), Throttled: len(r.Throttled), Fetch: r.Fetch != ""}
}

func (h *Handler) serve(r *http.Request) (*Result, error) {
	if r.Method != http.MethodPost {
		return nil, &httpError{http.StatusMethodNotAllowed, "POST a push event"}
	}
	ctx := r.Context()
	secrets, maxBytes, err := h.settings(ctx)
	if err != nil {
		return nil, err
	}
	if r.ContentLength > maxBytes {
		return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("payload over webhook.maxPayloadSizeMB (%d bytes)", maxBytes)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBytes))
	if err != nil {
		return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("payload over webhook.maxPayloadSizeMB (%d bytes)", maxBytes)}
	}
	push, err := parse(r.Header, body, secrets)
	if err != nil {
		return nil, err
	}
	if push == nil {
		return &Result{Refreshed: []string{}}, nil // not a push: ping and the like
	}
	return h.refresh(ctx, push)
}

// settings reads the webhook secrets (argocd-secret) and the payload cap
// (argocd-cm webhook.maxPayloadSizeMB, default 1) at each request, so they
// rotate without a restart.
func (h *Handler) settings(ctx context.Context) (map[string]string, int64, error) {
	secrets := map[string]string{}
	var s corev1.Secret
	err := h.o.Client.Get(ctx, client.ObjectKey{Namespace: h.o.Namespace, Name: SecretName}, &s)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, 0, fmt.Errorf("read %s: %w", SecretName, err)
	}
	for k, v := range s.Data {
		if strings.HasPrefix(k, "webhook.") {
			secrets[k] = string(v)
		}
	}
	maxBytes := int64(1 << 20)
	var cm corev1.ConfigMap
	if err := h.o.Client.Get(ctx, client.ObjectKey{Namespace: h.o.Namespace, Name: ConfigMap}, &cm); err == nil {
		if mb, err := strconv.ParseInt(cm.Data["webhook.maxPayloadSizeMB"], 10, 64); err == nil && mb > 0 {
			maxBytes = mb << 20
		}
	}
	return secrets, maxBytes, nil
}

// Matches reports whether a push concerns app: same repository, its
// target revision is the pushed branch (HEAD or empty: the default
// branch), and, when the app lists manifest-generate-paths and the push
// names its files, one of them is under those paths.
func Matches(app *v1alpha1.Application, p *Push) bool {
	src := app.SourceOf()
	if src == nil {
		return false
	}
	repo := source.RepoIdentity(src.RepoURL)
	same := false
	for _, u := range p.URLs {
		if u != "" && source.RepoIdentity(u) == repo {
			same = true
		}
	}
	if !same {
		return false
	}
	switch rev := src.TargetRevision; rev {
	case "", "HEAD":
		if p.DefaultBranch != "" && p.Branch != p.DefaultBranch {
			return false
		}
	default:
		if rev != p.Branch && strings.TrimPrefix(rev, "refs/heads/") != p.Branch {
			return false
		}
	}
	paths := app.Annotations[PathsAnnotation]
	if paths == "" || p.Changed == nil {
		return true
	}
	return source.AnyUnder(source.GeneratePaths(src.Path, paths), p.Changed)
}

// refresh sets the refresh annotation on every app the push concerns.
//
// manifest-generate-paths is Argo CD's rule and needs no checkout, but an
// app's render also reads what its path points at elsewhere (a file://
// chart dependency, values files). When the push names files and no app's
// paths cover them, one app that follows the repository and branch is
// refreshed anyway: its fetch lets the controller wake exactly the apps
// whose render inputs the push touched (controller/heads.go), and none if
// it touched nothing they read.
func (h *Handler) refresh(ctx context.Context, p *Push) (*Result, error) {
	res, err := h.refreshWhere(ctx, func(a *v1alpha1.Application) bool { return Matches(a, p) }, false)
	if err != nil || len(res.Refreshed) > 0 || len(res.Throttled) > 0 || p.Changed == nil {
		return res, err
	}
	anyPath := *p
	anyPath.Changed = nil
	fetch, err := h.refreshWhere(ctx, func(a *v1alpha1.Application) bool {
		return len(a.Spec.Sources) <= 1 && Matches(a, &anyPath)
	}, true)
	if err != nil {
		return nil, err
	}
	if len(fetch.Refreshed) > 0 {
		res.Refreshed, res.Fetch = fetch.Refreshed, fetch.Refreshed[0]
	}
	res.Throttled = fetch.Throttled
	return res, nil
}

// refreshWhere sets the refresh annotation on every served app that match
// accepts (only the first, if one), at most once per MinInterval per app.
func (h *Handler) refreshWhere(ctx context.Context, match func(*v1alpha1.Application) bool, one bool) (*Result, error) {
	var list v1alpha1.ApplicationList
	if err := h.o.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	res := &Result{Refreshed: []string{}}
	for i := range list.Items {
		app := &list.Items[i]
		if (app.Namespace != h.o.Namespace && !v1alpha1.GlobAny(h.o.AppNamespaces, app.Namespace)) || !match(app) {
			continue
		}
		key := app.Namespace + "/" + app.Name
		if !h.allow(key) {
			res.Throttled = append(res.Throttled, key)
			continue
		}
		patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:"normal"}}}`, v1alpha1.RefreshAnnotation))
		if err := h.o.Client.Patch(ctx, app, client.RawPatch("application/merge-patch+json", patch)); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("refresh %s: %w", key, err)
		}
		res.Refreshed = append(res.Refreshed, key)
		if one {
			break
		}
	}
	return res, nil
}

func (h *Handler) allow(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if t, ok := h.last[key]; ok && now.Sub(t) < h.o.MinInterval {
		return false
	}
	h.last[key] = now
	if len(h.last) > 10000 { // forget old entries
		for k, t := range h.last {
			if now.Sub(t) > time.Minute {
				delete(h.last, k)
			}
		}
	}
	return true
}
