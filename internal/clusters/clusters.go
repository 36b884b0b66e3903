// Package clusters reads Argo CD's cluster Secrets — the destinations an
// Application may deploy to besides the cluster mlcd runs in — and turns
// one into a client configuration. The same Secrets Argo CD reads work
// unchanged: label argocd.argoproj.io/secret-type: cluster, keys name,
// server, config (JSON: bearerToken, username/password, tlsClientConfig),
// and optionally namespaces and project.
package clusters

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// SecretTypeLabel and SecretType mark a cluster Secret, as in Argo CD.
const (
	SecretTypeLabel = "argocd.argoproj.io/secret-type"
	SecretType      = "cluster"
	// InClusterName is the name of the cluster mlcd runs in.
	InClusterName = "in-cluster"
)

// Cluster is one destination cluster from a Secret.
type Cluster struct {
	Name   string
	Server string
	// Namespaces, when set, are the only namespaces mlcd may manage there
	// (every object's, not only the destination's); cluster-scoped objects
	// then need ClusterResources (Argo CD's clusterResources: "true").
	Namespaces       []string
	ClusterResources bool
	// Project, when set, is the only AppProject whose apps may use it.
	Project string
	// Secret is the Secret's namespace/name (for messages).
	Secret string
	// Version changes whenever the Secret's content does: a connection
	// built from an older version is rebuilt.
	Version string
	config  Config
}

// Config is the Secret's `config` key, Argo CD's ClusterConfig.
type Config struct {
	Username        string          `json:"username,omitempty"`
	Password        string          `json:"password,omitempty"`
	BearerToken     string          `json:"bearerToken,omitempty"`
	TLSClientConfig TLSClientConfig `json:"tlsClientConfig,omitempty"`
}

// TLSClientConfig is the TLS part of Config (PEM data base64-encoded in
// the JSON, as Argo CD writes it).
type TLSClientConfig struct {
	Insecure   bool   `json:"insecure,omitempty"`
	ServerName string `json:"serverName,omitempty"`
	CAData     []byte `json:"caData,omitempty"`
	CertData   []byte `json:"certData,omitempty"`
	KeyData    []byte `json:"keyData,omitempty"`
}

// IsInCluster reports whether dest is the cluster mlcd runs in.
func IsInCluster(dest v1alpha1.ApplicationDestination) bool {
	if dest.Server != "" {
		return normalize(dest.Server) == normalize(v1alpha1.InClusterServer)
	}
	return dest.Name == InClusterName
}

// FromSecret reads a cluster Secret. Errors never quote the config (it
// holds credentials).
func FromSecret(s *corev1.Secret) (*Cluster, error) {
	c := &Cluster{
		Name:    string(s.Data["name"]),
		Server:  string(s.Data["server"]),
		Project: string(s.Data["project"]),
		Secret:  s.Namespace + "/" + s.Name,
	}
	if c.Server == "" {
		return nil, fmt.Errorf("cluster Secret %s has no server", c.Secret)
	}
	if c.Name == "" {
		c.Name = c.Server
	}
	c.ClusterResources = string(s.Data["clusterResources"]) == "true"
	for _, ns := range strings.Split(string(s.Data["namespaces"]), ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			c.Namespaces = append(c.Namespaces, ns)
		}
	}
	if raw := s.Data["config"]; len(raw) > 0 {
		if err := json.Unmarshal(raw, &c.config); err != nil {
			return nil, fmt.Errorf("cluster Secret %s: config is not valid JSON", c.Secret)
		}
	}
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%x;", k, s.Data[k])
	}
	c.Version = hex.EncodeToString(h.Sum(nil))[:16]
	return c, nil
}

// Matches reports whether the destination names this cluster: by server
// URL (trailing slash and case of the host aside) or, without a server,
// by name.
func (c *Cluster) Matches(dest v1alpha1.ApplicationDestination) bool {
	if dest.Server != "" {
		return normalize(dest.Server) == normalize(c.Server)
	}
	return dest.Name != "" && dest.Name == c.Name
}

// Permits reports why an app of project may not deploy to namespace on
// this cluster, or nil.
func (c *Cluster) Permits(project, namespace string) error {
	if c.Project != "" && c.Project != project {
		return fmt.Errorf("cluster %s is scoped to project %s, not %s", c.Name, c.Project, project)
	}
	if len(c.Namespaces) > 0 && !slices.Contains(c.Namespaces, namespace) {
		return fmt.Errorf("cluster %s is limited to namespaces %s, not %q", c.Name, strings.Join(c.Namespaces, ", "), namespace)
	}
	return nil
}

// PermitsObjects reports why objs may not be applied to this cluster, or
// nil: with namespaces set, each namespaced object's namespace must be one
// of them and a cluster-scoped object needs clusterResources.
func (c *Cluster) PermitsObjects(objs []*unstructured.Unstructured) error {
	if len(c.Namespaces) == 0 {
		return nil
	}
	for _, o := range objs {
		switch ns := o.GetNamespace(); {
		case ns == "" && !c.ClusterResources:
			return fmt.Errorf("%s %s: cluster %s is limited to namespaces %s and does not allow cluster-scoped resources (clusterResources)", o.GetKind(), o.GetName(), c.Name, strings.Join(c.Namespaces, ", "))
		case ns != "" && !slices.Contains(c.Namespaces, ns):
			return fmt.Errorf("%s %s: cluster %s is limited to namespaces %s, not %q", o.GetKind(), o.GetName(), c.Name, strings.Join(c.Namespaces, ", "), ns)
		}
	}
	return nil
}

// RESTConfig is the client configuration for the cluster.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:        c.Server,
		Username:    c.config.Username,
		Password:    c.config.Password,
		BearerToken: c.config.BearerToken,
		TLSClientConfig: rest.TLSClientConfig{
			Insecure:   c.config.TLSClientConfig.Insecure,
			ServerName: c.config.TLSClientConfig.ServerName,
			CAData:     c.config.TLSClientConfig.CAData,
			CertData:   c.config.TLSClientConfig.CertData,
			KeyData:    c.config.TLSClientConfig.KeyData,
		},
		QPS:     50,
		Burst:   100,
		Timeout: 30 * time.Second,
	}
}

// String names the cluster for messages: name and server, never
// credentials.
func (c *Cluster) String() string {
	if c.Name == c.Server {
		return c.Server
	}
	return fmt.Sprintf("%s (%s)", c.Name, c.Server)
}

func normalize(server string) string {
	return strings.ToLower(strings.TrimSuffix(server, "/"))
}
