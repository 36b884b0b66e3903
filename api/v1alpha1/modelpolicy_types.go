package v1alpha1

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// MLCDGroupVersion is mlcd.io/v1alpha1, for ideas Argo CD has no field for.
var MLCDGroupVersion = schema.GroupVersion{Group: "mlcd.io", Version: "v1alpha1"}

// ModelPolicyFile is where a model's policy lives, next to its values files.
const ModelPolicyFile = "mlcd.yaml"

// ModelPolicy says how a model is deployed and gated: which registry model
// it is, which values key carries its version, which environments deploy
// it (and in which order), and which offline metrics a version must meet.
// See docs/model-policy.md.
// +kubebuilder:object:root=true
type ModelPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ModelPolicySpec `json:"spec"`
}

// ModelPolicyList is a list of ModelPolicies.
// +kubebuilder:object:root=true
type ModelPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModelPolicy `json:"items"`
}

// ModelPolicySpec is the policy.
type ModelPolicySpec struct {
	RegisteredModel string             `json:"registeredModel,omitempty"`
	VersionKey      string             `json:"versionKey,omitempty"`
	Environments    []ModelEnvironment `json:"environments,omitempty"`
	Gates           []MetricGate       `json:"gates,omitempty"`
	// Image names the image whose tag carries the version when an
	// environment's valuesFile is a kustomization (images[name].newTag);
	// default: the kustomization's first image.
	Image string `json:"image,omitempty"`
	// Rollout says, per environment, how a new version rolls out (canary
	// steps and analysis, what a failure does, promotion to the next
	// environment).
	Rollout map[string]EnvironmentRollout `json:"rollout,omitempty"`
}

// ModelEnvironment maps an environment to its values file and Application.
type ModelEnvironment struct {
	Name        string `json:"name"`
	ValuesFile  string `json:"valuesFile"`
	Application string `json:"application,omitempty"`
	// Requires names the environment where a version must be deployed and
	// healthy first (its registry alias must point at the version).
	Requires string `json:"requires,omitempty"`
	// Approval says how an automatic promotion into this environment
	// lands: required (default: on a branch mlcd/promote/<model>/<version>/<env>
	// for review) or none (committed on the tracked branch).
	Approval string `json:"approval,omitempty"`
}

// MetricGate is an offline test on a version's metrics: either a fixed
// threshold (Op, Value) or a comparison with the version another
// environment runs (NotWorseThan, Tolerance; higher is better unless
// LowerIsBetter).
type MetricGate struct {
	Metric        string   `json:"metric"`
	Op            string   `json:"op,omitempty"`
	Value         *float64 `json:"value,omitempty"`
	NotWorseThan  string   `json:"notWorseThan,omitempty"`
	Tolerance     float64  `json:"tolerance,omitempty"`
	LowerIsBetter bool     `json:"lowerIsBetter,omitempty"`
}

// DefaultVersionKey is the values key that holds the model version.
const DefaultVersionKey = "model.version"

// ParseModelPolicy reads and validates a policy document.
func ParseModelPolicy(data []byte) (*ModelPolicy, error) {
	p := &ModelPolicy{}
	if err := yaml.UnmarshalStrict(data, p); err != nil {
		return nil, fmt.Errorf("invalid ModelPolicy: %w", err)
	}
	if p.Kind != "ModelPolicy" || p.APIVersion != MLCDGroupVersion.String() {
		return nil, fmt.Errorf("not a ModelPolicy: apiVersion %q kind %q", p.APIVersion, p.Kind)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// Validate fills defaults and checks the policy (also for ModelPolicy
// objects read from the cluster).
func (p *ModelPolicy) Validate() error {
	if p.Spec.RegisteredModel == "" {
		p.Spec.RegisteredModel = p.Name
	}
	if p.Spec.RegisteredModel == "" {
		return fmt.Errorf("ModelPolicy: spec.registeredModel is required")
	}
	if p.Spec.VersionKey == "" {
		p.Spec.VersionKey = DefaultVersionKey
	}
	envs := map[string]bool{}
	for _, e := range p.Spec.Environments {
		if e.Name == "" || e.ValuesFile == "" {
			return fmt.Errorf("ModelPolicy %s: every environment needs name and valuesFile", p.Name)
		}
		envs[e.Name] = true
	}
	for _, e := range p.Spec.Environments {
		if e.Approval != "" && e.Approval != "required" && e.Approval != "none" {
			return fmt.Errorf("ModelPolicy %s: environment %s: approval %q is not required or none", p.Name, e.Name, e.Approval)
		}
		if e.Requires != "" && !envs[e.Requires] {
			return fmt.Errorf("ModelPolicy %s: environment %s requires unknown environment %s", p.Name, e.Name, e.Requires)
		}
	}
	if err := validateRollout(p); err != nil {
		return err
	}
	for i, g := range p.Spec.Gates {
		switch {
		case g.Metric == "":
			return fmt.Errorf("ModelPolicy %s: gate %d has no metric", p.Name, i)
		case g.NotWorseThan != "":
			if !envs[g.NotWorseThan] {
				return fmt.Errorf("ModelPolicy %s: gate on %s compares with unknown environment %s", p.Name, g.Metric, g.NotWorseThan)
			}
		case g.Value == nil || !validOp(g.Op):
			return fmt.Errorf("ModelPolicy %s: gate on %s needs op (>=, >, <=, <, ==) and value", p.Name, g.Metric)
		}
	}
	return nil
}

func validOp(op string) bool {
	switch strings.TrimSpace(op) {
	case ">=", ">", "<=", "<", "==":
		return true
	}
	return false
}

// Environment returns the named environment.
func (p *ModelPolicy) Environment(name string) (ModelEnvironment, bool) {
	for _, e := range p.Spec.Environments {
		if e.Name == name {
			return e, true
		}
	}
	return ModelEnvironment{}, false
}

// EnvironmentForApp returns the environment deployed by application app.
// EnvironmentFor returns the environment whose application names the app
// namespace/name: "namespace/name" names it exactly, a bare name only an
// app in the policy's own namespace (the control-plane namespace, for a
// cluster policy) — an app of the same name in a tenant's namespace is
// not governed by it.
func (p *ModelPolicy) EnvironmentFor(namespace, name string) (ModelEnvironment, bool) {
	for _, e := range p.Spec.Environments {
		if ns, n, ok := strings.Cut(e.Application, "/"); ok {
			if ns == namespace && n == name {
				return e, true
			}
		} else if e.Application == name && (namespace == p.Namespace || p.Namespace == "" || namespace == "") {
			return e, true
		}
	}
	return ModelEnvironment{}, false
}

func (p *ModelPolicy) EnvironmentForApp(app string) (ModelEnvironment, bool) {
	for _, e := range p.Spec.Environments {
		if e.Application == app {
			return e, true
		}
	}
	return ModelEnvironment{}, false
}
