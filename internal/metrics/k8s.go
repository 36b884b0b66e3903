package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
)

// appKey carries the Application a request is made for.
type appKey struct{}

type appRef struct{ namespace, name, project string }

// WithApp marks ctx as the reconcile of one Application: Kubernetes
// requests made with it count towards argocd_app_k8s_request_total.
func WithApp(ctx context.Context, namespace, name, project string) context.Context {
	return context.WithValue(ctx, appKey{}, appRef{namespace, name, project})
}

// K8sTransport wraps a Kubernetes client transport (rest.Config.Wrap):
// every request made under WithApp is counted with the app's labels, the
// verb, resource and namespace from the URL, and the answer's code.
// Requests outside an app's reconcile (informers, leader election) are
// not counted, as in Argo CD.
func (r *Recorder) K8sTransport(server string) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			resp, err := next.RoundTrip(req)
			app, ok := req.Context().Value(appKey{}).(appRef)
			if !ok {
				return resp, err
			}
			code := "error"
			if err == nil {
				code = strconv.Itoa(resp.StatusCode)
			}
			resource, namespace := ResourceOf(req.URL.Path)
			dryRun := strconv.FormatBool(req.URL.Query().Get("dryRun") != "")
			r.k8sRequests.WithLabelValues(app.namespace, app.name, app.project, server, code, verbOf(req), resource, namespace, dryRun).Inc()
			return resp, err
		})
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// verbOf is the Kubernetes verb of a request (list and get are both GET:
// a GET on a collection is a list, with watch=true a watch).
func verbOf(req *http.Request) string {
	switch req.Method {
	case http.MethodGet:
		if req.URL.Query().Get("watch") == "true" {
			return "Watch"
		}
		return "Get"
	case http.MethodPost:
		return "Create"
	case http.MethodPut:
		return "Update"
	case http.MethodPatch:
		return "Patch"
	case http.MethodDelete:
		return "Delete"
	}
	return req.Method
}

// ResourceOf reads the resource (plural, with its subresource) and
// namespace from an API path: /api/v1/namespaces/ns/configmaps/x →
// ("configmaps", "ns"); /apis/apps/v1/namespaces/ns/deployments/x/status
// → ("deployments/status", "ns"); /api/v1/namespaces/ns → ("namespaces", "").
func ResourceOf(path string) (resource, namespace string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return "", ""
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		namespace, parts = parts[1], parts[2:]
	} else if len(parts) >= 1 && parts[0] == "namespaces" {
		return "namespaces", ""
	}
	switch len(parts) {
	case 0:
		return "", namespace
	case 1, 2:
		return parts[0], namespace
	default:
		return parts[0] + "/" + parts[2], namespace
	}
}
