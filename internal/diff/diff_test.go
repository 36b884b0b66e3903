package diff

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

func parse(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

const desiredDeploy = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ns, annotations: {team: ml}}
spec:
  replicas: 2
  template:
    spec:
      containers:
      - {name: server, image: "server:v1", env: [{name: A, value: "1"}]}
      - {name: sidecar, image: "proxy:v1"}
`

const liveDeploy = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: ns
  annotations: {team: ml, injected: "yes"}
  managedFields:
  - manager: vpa-recommender
    operation: Update
    fieldsType: FieldsV1
    fieldsV1: {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"server\"}": {"f:resources": {".": {}, "f:requests": {}}}}}}}}
spec:
  replicas: 7
  template:
    spec:
      containers:
      - {name: server, image: "server:v0", env: [{name: A, value: "1"}], resources: {requests: {cpu: 300m}}}
      - {name: sidecar, image: "proxy:v9"}
`

func field(t *testing.T, u *unstructured.Unstructured, path ...any) string {
	v, _ := get(u.Object, path)
	data, _ := json.Marshal(v)
	return string(data)
}

func TestRespect(t *testing.T) {
	cases := []struct {
		name  string
		rule  v1alpha1.ResourceIgnoreDifferences
		check func(t *testing.T, d *unstructured.Unstructured)
	}{
		{"json pointer", v1alpha1.ResourceIgnoreDifferences{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}}, func(t *testing.T, d *unstructured.Unstructured) {
			if got := field(t, d, "spec", "replicas"); got != "7" {
				t.Errorf("replicas = %s, want live 7", got)
			}
			if got := field(t, d, "spec", "template", "spec", "containers", 1, "image"); got != `"proxy:v1"` {
				t.Errorf("sidecar image = %s, want Git's", got)
			}
		}},
		{"jq expression", v1alpha1.ResourceIgnoreDifferences{Group: "apps", Kind: "Deployment", JQPathExpressions: []string{`.spec.template.spec.containers[] | select(.name == "sidecar").image`}}, func(t *testing.T, d *unstructured.Unstructured) {
			if got := field(t, d, "spec", "template", "spec", "containers", 1, "image"); got != `"proxy:v9"` {
				t.Errorf("sidecar image = %s, want live proxy:v9", got)
			}
			if got := field(t, d, "spec", "template", "spec", "containers", 0, "image"); got != `"server:v1"` {
				t.Errorf("server image = %s, want Git's server:v1", got)
			}
		}},
		{"pointer to a field only live has", v1alpha1.ResourceIgnoreDifferences{Kind: "Deployment", Group: "apps", JSONPointers: []string{"/metadata/annotations/injected"}}, func(t *testing.T, d *unstructured.Unstructured) {
			if got := field(t, d, "metadata", "annotations", "injected"); got != `"yes"` {
				t.Errorf("injected = %s, want live yes", got)
			}
		}},
		{"managed fields manager", v1alpha1.ResourceIgnoreDifferences{Group: "apps", Kind: "Deployment", ManagedFieldsManagers: []string{"vpa-recommender"}}, func(t *testing.T, d *unstructured.Unstructured) {
			if got := field(t, d, "spec", "template", "spec", "containers", 0, "resources"); got != `{"requests":{"cpu":"300m"}}` {
				t.Errorf("resources = %s, want the manager's", got)
			}
			if got := field(t, d, "spec", "replicas"); got != "2" {
				t.Errorf("replicas = %s, want Git's 2", got)
			}
		}},
		{"other kind", v1alpha1.ResourceIgnoreDifferences{Kind: "StatefulSet", Group: "apps", JSONPointers: []string{"/spec/replicas"}}, func(t *testing.T, d *unstructured.Unstructured) {
			if got := field(t, d, "spec", "replicas"); got != "2" {
				t.Errorf("replicas = %s, want Git's 2", got)
			}
		}},
		{"other name", v1alpha1.ResourceIgnoreDifferences{Kind: "Deployment", Group: "apps", Name: "api", JSONPointers: []string{"/spec/replicas"}}, func(t *testing.T, d *unstructured.Unstructured) {
			if got := field(t, d, "spec", "replicas"); got != "2" {
				t.Errorf("replicas = %s, want Git's 2", got)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rules, err := Compile([]v1alpha1.ResourceIgnoreDifferences{c.rule})
			if err != nil {
				t.Fatal(err)
			}
			d := parse(t, desiredDeploy)
			if err := Respect(rules, d, parse(t, liveDeploy)); err != nil {
				t.Fatal(err)
			}
			c.check(t, d)
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, r := range []v1alpha1.ResourceIgnoreDifferences{
		{Kind: "Deployment", JSONPointers: []string{"spec/replicas"}},
		{Kind: "Deployment", JQPathExpressions: []string{".spec.[["}},
	} {
		if _, err := Compile([]v1alpha1.ResourceIgnoreDifferences{r}); err == nil {
			t.Errorf("%+v: no error", r)
		}
	}
}

func TestAutoscaled(t *testing.T) {
	objs := []*unstructured.Unstructured{
		parse(t, desiredDeploy),
		parse(t, "{apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, metadata: {name: web, namespace: ns}, spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}}"),
		parse(t, "{apiVersion: keda.sh/v1alpha1, kind: ScaledObject, metadata: {name: q, namespace: ns}, spec: {scaleTargetRef: {name: worker}}}"),
	}
	got := Autoscaled(objs)
	if !got["Deployment/ns/web"] || !got["Deployment/ns/worker"] || len(got) != 2 {
		t.Fatalf("targets = %v", got)
	}
	d := parse(t, desiredDeploy)
	KeepReplicas(d, parse(t, liveDeploy))
	if r := field(t, d, "spec", "replicas"); r != "7" {
		t.Errorf("replicas = %s, want live 7", r)
	}
	d = parse(t, desiredDeploy)
	KeepReplicas(d, nil)
	if r := field(t, d, "spec", "replicas"); r != "2" {
		t.Errorf("create: replicas = %s, want Git's 2", r)
	}
}
