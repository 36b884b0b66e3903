package clusters

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

func secret(data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "argocd", Name: "gpu-east"}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func TestFromSecretArgoShape(t *testing.T) {
	c, err := FromSecret(secret(map[string]string{
		"name":   "gpu-east",
		"server": "https://10.0.0.1:6443/",
		// caData is base64 of "PEM" in Argo CD's JSON.
		"config":     `{"bearerToken":"s3cr3t","tlsClientConfig":{"insecure":false,"caData":"UEVN","serverName":"api.gpu-east"}}`,
		"namespaces": "models, serving",
		"project":    "ml",
	}))
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.RESTConfig()
	if cfg.Host != "https://10.0.0.1:6443/" || cfg.BearerToken != "s3cr3t" || string(cfg.CAData) != "PEM" || cfg.ServerName != "api.gpu-east" {
		t.Errorf("config %+v", cfg)
	}
	if !c.Matches(v1alpha1.ApplicationDestination{Server: "https://10.0.0.1:6443"}) || !c.Matches(v1alpha1.ApplicationDestination{Name: "gpu-east"}) {
		t.Error("does not match its server or name")
	}
	if c.Matches(v1alpha1.ApplicationDestination{Server: "https://10.0.0.2:6443", Name: "gpu-east"}) {
		t.Error("a server wins over the name")
	}
	if err := c.Permits("ml", "models"); err != nil {
		t.Error(err)
	}
	if err := c.Permits("other", "models"); err == nil || !strings.Contains(err.Error(), "scoped to project ml") {
		t.Errorf("project scope: %v", err)
	}
	if err := c.Permits("ml", "kube-system"); err == nil || !strings.Contains(err.Error(), "limited to namespaces models, serving") {
		t.Errorf("namespace scope: %v", err)
	}
	if strings.Contains(c.String(), "s3cr3t") || c.String() != "gpu-east (https://10.0.0.1:6443/)" {
		t.Errorf("String() = %q", c.String())
	}
}

func TestFromSecretErrorsHideConfig(t *testing.T) {
	_, err := FromSecret(secret(map[string]string{"server": "https://x", "config": `{"bearerToken":"s3cr3t"`}))
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("err = %v", err)
	}
	if _, err := FromSecret(secret(map[string]string{"name": "x"})); err == nil {
		t.Error("a Secret without server is accepted")
	}
}

func TestVersionFollowsContent(t *testing.T) {
	a, _ := FromSecret(secret(map[string]string{"server": "https://x", "config": `{"bearerToken":"a"}`}))
	b, _ := FromSecret(secret(map[string]string{"server": "https://x", "config": `{"bearerToken":"b"}`}))
	a2, _ := FromSecret(secret(map[string]string{"server": "https://x", "config": `{"bearerToken":"a"}`}))
	if a.Version == b.Version || a.Version != a2.Version {
		t.Errorf("versions %s %s %s", a.Version, b.Version, a2.Version)
	}
}

func TestIsInCluster(t *testing.T) {
	for dest, want := range map[v1alpha1.ApplicationDestination]bool{
		{Server: "https://kubernetes.default.svc"}:  true,
		{Server: "https://kubernetes.default.svc/"}: true,
		{Name: "in-cluster"}:                        true,
		{Name: "gpu-east"}:                          false,
		{Server: "https://10.0.0.1:6443"}:           false,
	} {
		if got := IsInCluster(dest); got != want {
			t.Errorf("IsInCluster(%+v) = %v", dest, got)
		}
	}
}

func TestPermitsObjects(t *testing.T) {
	c := &Cluster{Name: "edge", Namespaces: []string{"ml", "ml-staging"}}
	obj := func(kind, ns string) *unstructured.Unstructured {
		o := &unstructured.Unstructured{}
		o.SetKind(kind)
		o.SetName("x")
		o.SetNamespace(ns)
		return o
	}
	if err := c.PermitsObjects([]*unstructured.Unstructured{obj("ConfigMap", "ml"), obj("Service", "ml-staging")}); err != nil {
		t.Errorf("allowed namespaces: %v", err)
	}
	if err := c.PermitsObjects([]*unstructured.Unstructured{obj("ConfigMap", "ml"), obj("Secret", "kube-system")}); err == nil || !strings.Contains(err.Error(), `not "kube-system"`) {
		t.Errorf("an object in another namespace: %v", err)
	}
	if err := c.PermitsObjects([]*unstructured.Unstructured{obj("ClusterRole", "")}); err == nil || !strings.Contains(err.Error(), "clusterResources") {
		t.Errorf("a cluster-scoped object: %v", err)
	}
	c.ClusterResources = true
	if err := c.PermitsObjects([]*unstructured.Unstructured{obj("ClusterRole", "")}); err != nil {
		t.Errorf("clusterResources: %v", err)
	}
}
