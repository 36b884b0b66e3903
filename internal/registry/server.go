package registry

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mlcd-dev/mlcd/internal/httpguard"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// ServerOptions configure the embedded registry server.
type ServerOptions struct {
	// DB is the SQLite file; created and migrated on start.
	DB string
	// ArtifactsDir is where the artifact proxy stores files.
	ArtifactsDir string
	// AuthToken, when set, is accepted as "Authorization: Bearer <token>".
	AuthToken string
	// BasicUsers, when set, are accepted as HTTP Basic user → password.
	// With neither AuthToken nor BasicUsers the server is open.
	BasicUsers map[string]string
	// MaxBodyBytes caps JSON request bodies. Default 8 MiB.
	MaxBodyBytes int64
	// MaxArtifactBytes caps one uploaded artifact. Default 2 GiB.
	MaxArtifactBytes int64
	// Logger receives one line per request (never credentials).
	Logger *slog.Logger
	// AllowedHosts are Host names besides IP addresses and localhost that
	// a request on a loopback address may carry (httpguard).
	AllowedHosts []string
}

// Validate checks the options and fills defaults.
func (o *ServerOptions) Validate() error {
	if o.DB == "" {
		return errors.New("registry: a database path is required")
	}
	if o.ArtifactsDir == "" {
		o.ArtifactsDir = filepath.Join(filepath.Dir(o.DB), "artifacts")
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 8 << 20
	}
	if o.MaxArtifactBytes == 0 {
		o.MaxArtifactBytes = 2 << 30
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Server is an MLflow-compatible registry and minimal tracking server.
type Server struct {
	opts      ServerOptions
	store     *store
	artifacts *os.Root
	routes    map[string]handler
	now       func() time.Time
	guarded   http.Handler
}

type handler func(r *request) (any, error)

// NewServer opens (creating if needed) the database and artifact dir.
func NewServer(opts ServerOptions) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(opts.DB), 0o755); err != nil {
		return nil, fmt.Errorf("registry: create db dir: %w", err)
	}
	st, err := openStore(opts.DB)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.ArtifactsDir, 0o755); err != nil {
		st.Close()
		return nil, fmt.Errorf("registry: create artifacts dir: %w", err)
	}
	root, err := os.OpenRoot(opts.ArtifactsDir)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("registry: open artifacts dir: %w", err)
	}
	s := &Server{opts: opts, store: st, artifacts: root, now: time.Now}
	s.routes = s.registryRoutes()
	s.guarded = httpguard.Wrap(http.HandlerFunc(s.serve), httpguard.Options{AllowedHosts: opts.AllowedHosts})
	return s, nil
}

// Close releases the database.
func (s *Server) Close() error {
	s.artifacts.Close()
	return s.store.Close()
}

// request is one API call with its parameters, from the query (GET) or the
// JSON body (POST, PATCH, DELETE).
type request struct {
	*http.Request
	user string
	body []byte
	// pathID is the {id} of routes like webhooks/{id}.
	pathID string
}

// decode fills dst from the request and checks required fields, named in
// dst's `required:"true"` tags.
func (r *request) decode(dst any) error {
	if r.Method == http.MethodGet {
		if err := decodeQuery(r.URL.Query(), dst); err != nil {
			return err
		}
	} else if len(strings.TrimSpace(string(r.body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(r.body)))
		if err := dec.Decode(dst); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return apiErr(CodeInvalidParam, "Invalid value for parameter '%s': expected %s, got %s", te.Field, te.Type, te.Value)
			}
			return apiErr(CodeInvalidParam, "Malformed JSON request body: %v", err)
		}
	}
	return checkRequired(dst)
}

func fieldName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

func checkRequired(dst any) error {
	v := reflect.ValueOf(dst).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if f.Tag.Get("required") == "true" && v.Field(i).IsZero() {
			return apiErr(CodeInvalidParam, "Missing value for required parameter '%s'. See the API docs for more information about request parameters.", fieldName(f))
		}
	}
	return nil
}

// decodeQuery sets string, integer, bool and []string fields from query
// parameters; repeated keys fill slices.
func decodeQuery(q map[string][]string, dst any) error {
	v := reflect.ValueOf(dst).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		name := fieldName(f)
		vals, ok := q[name]
		if !ok || len(vals) == 0 {
			continue
		}
		fv := v.Field(i)
		switch fv.Kind() {
		case reflect.String:
			fv.SetString(vals[0])
		case reflect.Int, reflect.Int64:
			n, err := strconv.ParseInt(vals[0], 10, 64)
			if err != nil {
				return apiErr(CodeInvalidParam, "Invalid value %q for parameter '%s': expected an integer", vals[0], name)
			}
			fv.SetInt(n)
		case reflect.Bool:
			switch vals[0] {
			case "true":
				fv.SetBool(true)
			case "false":
			default:
				return apiErr(CodeInvalidParam, "Invalid value %q for parameter '%s': expected true or false", vals[0], name)
			}
		case reflect.Slice:
			if fv.Type().Elem().Kind() == reflect.String {
				fv.Set(reflect.ValueOf(append([]string(nil), vals...)))
			}
		}
	}
	return nil
}

// ServeHTTP routes MLflow's REST API (under /api/2.0/mlflow/ and
// /ajax-api/2.0/mlflow/) and the artifact proxy, behind httpguard: a
// web page cannot POST to it cross-site or reach it by DNS rebinding.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.guarded.ServeHTTP(w, r) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		s.opts.Logger.Info("registry request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
	}()
	user, ok := s.authenticate(r)
	if !ok {
		rec.Header().Set("WWW-Authenticate", `Basic realm="mlcd registry"`)
		writeError(rec, apiErr(CodeUnauthenticated, "You are not authenticated. Please provide valid credentials."))
		return
	}
	path := r.URL.Path
	for _, prefix := range []string{"/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
			s.serveArtifacts(rec, r, strings.TrimPrefix(rest, "/"))
			return
		}
	}
	var endpoint string
	for _, prefix := range []string{"/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/", "/api/2.0/preview/mlflow/"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			endpoint = rest
			break
		}
	}
	route := r.Method + " " + endpoint
	pathID := ""
	if id, ok := strings.CutPrefix(endpoint, "webhooks/"); ok && id != "" && !strings.Contains(id, "/") {
		route, pathID = r.Method+" webhooks/{id}", id
	}
	h, ok := s.routes[route]
	if endpoint == "" || !ok {
		writeError(rec, apiErr(CodeEndpointUnknown, "No API endpoint found for %s %s", r.Method, path))
		return
	}
	req := &request{Request: r, user: user, pathID: pathID}
	if r.Method != http.MethodGet {
		body, err := io.ReadAll(http.MaxBytesReader(rec, r.Body, s.opts.MaxBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				e := apiErr(CodeInvalidParam, "request body exceeds %d bytes", s.opts.MaxBodyBytes)
				e.Status = http.StatusRequestEntityTooLarge
				writeError(rec, e)
				return
			}
			writeError(rec, apiErr(CodeBadRequest, "read request body: %v", err))
			return
		}
		req.body = body
	}
	out, err := h(req)
	if err != nil {
		writeError(rec, err)
		return
	}
	s.notify(eventOf(route, req, out))
	if out == nil {
		out = struct{}{}
	}
	writeJSON(rec, http.StatusOK, out)
}

func (s *Server) authenticate(r *http.Request) (string, bool) {
	if s.opts.AuthToken == "" && len(s.opts.BasicUsers) == 0 {
		user, _, _ := r.BasicAuth()
		return user, true
	}
	if s.opts.AuthToken != "" {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok &&
			subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.AuthToken)) == 1 {
			return "", true
		}
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if want, known := s.opts.BasicUsers[user]; known && subtle.ConstantTimeCompare([]byte(pass), []byte(want)) == 1 {
			return user, true
		}
	}
	return "", false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: CodeInternal, Message: err.Error(), Status: http.StatusInternalServerError}
	}
	writeJSON(w, e.Status, e)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
