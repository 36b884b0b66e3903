package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// AppList is a page of Applications.
type AppList struct {
	Items []v1alpha1.Application `json:"items"`
	// Continue is the token of the next page ("" on the last).
	Continue string `json:"continue,omitempty"`
	Total    int    `json:"total"`
}

const (
	defaultPage = 500
	maxPage     = 2000
)

// listApps answers GET /api/v1/applications?project=&search=&limit=&continue=.
func (s *Server) listApps(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	q := r.URL.Query()
	limit := defaultPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, &apiError{http.StatusBadRequest, "limit must be a positive number"}
		}
		limit = min(n, maxPage)
	}
	offset := 0
	if v := q.Get("continue"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err == nil {
			offset, err = strconv.Atoi(string(raw))
		}
		if err != nil || offset < 0 {
			return nil, &apiError{http.StatusBadRequest, "invalid continue token"}
		}
	}
	visible, err := s.visibleApps(r.Context(), who)
	if err != nil {
		return nil, err
	}
	projects := q["project"]
	search := strings.ToLower(q.Get("search"))
	var items []v1alpha1.Application
	for _, a := range visible {
		if len(projects) > 0 && !slices.Contains(projects, a.Spec.Project) {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(a.Namespace+"/"+a.Name+" "+a.Annotations[v1alpha1.AppAnnotationModel]), search) {
			continue
		}
		items = append(items, a)
	}
	slices.SortFunc(items, func(a, b v1alpha1.Application) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	out := AppList{Total: len(items), Items: []v1alpha1.Application{}}
	if offset < len(items) {
		end := min(offset+limit, len(items))
		out.Items = items[offset:end]
		if end < len(items) {
			out.Continue = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
		}
	}
	for i := range out.Items {
		scrub(&out.Items[i])
	}
	return out, nil
}

// app loads the app named by the route ({name}, ?appNamespace=) that who
// may see; one it may not see is "not found", as Argo CD answers.
func (s *Server) app(r *http.Request, who *Identity) (*v1alpha1.Application, error) {
	name := r.PathValue("name")
	ns := r.URL.Query().Get("appNamespace")
	if ns == "" {
		ns = s.o.Namespace
	}
	if n, a, ok := strings.Cut(name, "/"); ok { // "<namespace>/<name>"
		ns, name = n, a
	}
	app := &v1alpha1.Application{}
	err := s.o.Client.Get(r.Context(), client.ObjectKey{Namespace: ns, Name: name}, app)
	if apierrors.IsNotFound(err) || !s.served(ns) || (err == nil && !who.Sees(app.Spec.Project)) {
		return nil, &apiError{http.StatusNotFound, fmt.Sprintf("application %s/%s not found", ns, name)}
	}
	if err != nil {
		return nil, err
	}
	return app, nil
}

// getApp answers GET /api/v1/applications/{name}.
func (s *Server) getApp(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	app, err := s.app(r, who)
	if err != nil {
		return nil, err
	}
	scrub(app)
	return app, nil
}

// scrub drops what a response must not carry: managed fields and the
// last-applied annotation (it may hold a Secret's data).
func scrub(app *v1alpha1.Application) {
	app.ManagedFields = nil
	delete(app.Annotations, "kubectl.kubernetes.io/last-applied-configuration")
	// A password written into a repository URL is not shown.
	if app.Spec.Source != nil {
		app.Spec.Source.RepoURL = source.RedactURL(app.Spec.Source.RepoURL)
	}
	for i := range app.Spec.Sources {
		app.Spec.Sources[i].RepoURL = source.RedactURL(app.Spec.Sources[i].RepoURL)
	}
	app.Status.Sync.ComparedTo.Source.RepoURL = source.RedactURL(app.Status.Sync.ComparedTo.Source.RepoURL)
	for i := range app.Status.History {
		app.Status.History[i].Source.RepoURL = source.RedactURL(app.Status.History[i].Source.RepoURL)
	}
}

// SyncRequest is the body of POST …/sync.
type SyncRequest struct {
	Prune bool `json:"prune,omitempty"`
}

// syncApp sets Argo CD's `operation` field on the app; the controller
// runs the sync and clears it.
func (s *Server) syncApp(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	var req SyncRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil && err.Error() != "EOF" {
			if strings.Contains(err.Error(), "too large") {
				return nil, &apiError{http.StatusRequestEntityTooLarge, err.Error()}
			}
			return nil, &apiError{http.StatusBadRequest, "invalid JSON body: " + err.Error()}
		}
	}
	app, err := s.app(r, who)
	if err != nil {
		return nil, err
	}
	before := app.DeepCopy()
	app.Operation = &v1alpha1.Operation{
		Sync:        &v1alpha1.SyncOperation{Prune: req.Prune},
		InitiatedBy: v1alpha1.OperationInitiator{Username: who.Name},
	}
	if err := s.o.Client.Patch(r.Context(), app, client.MergeFrom(before)); err != nil {
		return nil, err
	}
	scrub(app)
	return app, nil
}

// refreshApp sets the refresh annotation: the controller fetches now.
func (s *Server) refreshApp(_ http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	app, err := s.app(r, who)
	if err != nil {
		return nil, err
	}
	before := app.DeepCopy()
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	app.Annotations[v1alpha1.RefreshAnnotation] = "normal"
	if err := s.o.Client.Patch(r.Context(), app, client.MergeFrom(before)); err != nil {
		return nil, err
	}
	scrub(app)
	return app, nil
}

// deleteApp deletes the app; ?cascade=true (the default, as Argo CD)
// deletes its resources first through the resources finalizer.
func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	app, err := s.app(r, who)
	if err != nil {
		return nil, err
	}
	if r.URL.Query().Get("cascade") != "false" && !slices.Contains(app.Finalizers, v1alpha1.ResourcesFinalizer) {
		before := app.DeepCopy()
		app.Finalizers = append(app.Finalizers, v1alpha1.ResourcesFinalizer)
		if err := s.o.Client.Patch(r.Context(), app, client.MergeFrom(before)); err != nil {
			return nil, err
		}
	}
	if err := s.o.Client.Delete(r.Context(), app); err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	return map[string]string{"deleted": app.Namespace + "/" + app.Name}, nil
}

// session answers who the token is.
func (s *Server) session(_ http.ResponseWriter, _ *http.Request, who *Identity) (any, error) {
	return who, nil
}
