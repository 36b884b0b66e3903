package server

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// role is what a token may do.
type role string

const (
	roleReadonly role = "readonly"
	roleAdmin    role = "admin"
)

func (r role) allows(need role) bool { return r == roleAdmin || r == need }

// Identity is who a request comes from.
type Identity struct {
	Name string `json:"name"`
	Role role   `json:"role"`
	// Projects scopes the token to these AppProjects; empty: all.
	Projects []string `json:"projects,omitempty"`
}

// Sees reports whether the identity may see apps of project.
func (i *Identity) Sees(project string) bool {
	return len(i.Projects) == 0 || slices.Contains(i.Projects, project)
}

// TokenEntry is one API token in a tokens file or the tokens Secret.
type TokenEntry struct {
	Name     string   `json:"name"`
	Token    string   `json:"token"`
	Role     string   `json:"role"`
	Projects []string `json:"projects,omitempty"`
}

// TokensSecret is the Secret in the control-plane namespace whose
// `tokens.yaml` key lists API tokens ({tokens: [{name, token, role,
// projects}]}), in addition to a --tokens-file.
const TokensSecret = "mlcd-api-tokens"

// Auth checks bearer tokens against a file and the tokens Secret.
type Auth struct {
	file   []TokenEntry
	client client.Reader
	ns     string

	mu sync.Mutex
}

// NewAuth reads tokensFile (may be empty) and, when c is not nil, the
// tokens Secret in namespace at every request (so tokens can be rotated
// without a restart).
func NewAuth(tokensFile string, c client.Reader, namespace string) (*Auth, error) {
	a := &Auth{client: c, ns: namespace}
	if tokensFile != "" {
		data, err := os.ReadFile(tokensFile)
		if err != nil {
			return nil, fmt.Errorf("read tokens file: %w", err)
		}
		if a.file, err = parseTokens(data); err != nil {
			return nil, fmt.Errorf("tokens file %s: %w", tokensFile, err)
		}
	}
	return a, nil
}

func parseTokens(data []byte) ([]TokenEntry, error) {
	var doc struct {
		Tokens []TokenEntry `json:"tokens"`
	}
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return nil, err
	}
	for i, t := range doc.Tokens {
		if t.Token == "" || len(t.Token) < 16 {
			return nil, fmt.Errorf("token %d (%s): a token of at least 16 characters is required", i, t.Name)
		}
		if t.Role != string(roleAdmin) && t.Role != string(roleReadonly) {
			return nil, fmt.Errorf("token %d (%s): role must be admin or readonly, not %q", i, t.Name, t.Role)
		}
	}
	return doc.Tokens, nil
}

func (a *Auth) entries(ctx context.Context) []TokenEntry {
	out := append([]TokenEntry(nil), a.file...)
	if a.client == nil {
		return out
	}
	var s corev1.Secret
	if err := a.client.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: TokensSecret}, &s); err == nil {
		if extra, err := parseTokens(s.Data["tokens.yaml"]); err == nil {
			out = append(out, extra...)
		}
	}
	return out
}

// identify returns the identity of a bearer token (constant-time compare).
func (a *Auth) identify(ctx context.Context, token string) (*Identity, bool) {
	for _, e := range a.entries(ctx) {
		if subtle.ConstantTimeCompare([]byte(e.Token), []byte(token)) == 1 {
			return &Identity{Name: e.Name, Role: role(e.Role), Projects: e.Projects}, true
		}
	}
	return nil, false
}

func (s *Server) authenticate(r *http.Request) (*Identity, error) {
	if s.o.InsecureNoAuth {
		return &Identity{Name: "anonymous", Role: roleAdmin}, nil
	}
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return nil, &apiError{http.StatusUnauthorized, "no bearer token: pass Authorization: Bearer <token> (mlcd CLI: --token or MLCD_TOKEN)"}
	}
	who, ok := s.o.Auth.identify(r.Context(), strings.TrimSpace(token))
	if !ok {
		return nil, &apiError{http.StatusUnauthorized, "unknown token"}
	}
	return who, nil
}
