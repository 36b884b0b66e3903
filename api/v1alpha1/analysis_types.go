package v1alpha1

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// AnalysisTemplate is Argo Rollouts' argoproj.io/v1alpha1 AnalysisTemplate:
// the metrics a canary step or the background analysis measures. Existing
// templates carry over unchanged; mlcd looks them up in the app's
// destination namespace, and ClusterAnalysisTemplates cluster-wide.
// +kubebuilder:object:root=true
type AnalysisTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AnalysisTemplateSpec `json:"spec"`
}

// AnalysisTemplateList is a list of AnalysisTemplates.
// +kubebuilder:object:root=true
type AnalysisTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AnalysisTemplate `json:"items"`
}

// ClusterAnalysisTemplate is an AnalysisTemplate for every namespace.
// +kubebuilder:object:root=true
type ClusterAnalysisTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AnalysisTemplateSpec `json:"spec"`
}

// ClusterAnalysisTemplateList is a list of ClusterAnalysisTemplates.
// +kubebuilder:object:root=true
type ClusterAnalysisTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterAnalysisTemplate `json:"items"`
}

// AnalysisTemplateSpec is Argo Rollouts' template spec.
type AnalysisTemplateSpec struct {
	Metrics              []Metric               `json:"metrics"`
	Args                 []TemplateArgument     `json:"args,omitempty"`
	DryRun               []MetricSelector       `json:"dryRun,omitempty"`
	MeasurementRetention []MeasurementRetention `json:"measurementRetention,omitempty"`
}

// TemplateArgument is a template's argument; Value is its default.
type TemplateArgument struct {
	Name      string          `json:"name"`
	Value     *string         `json:"value,omitempty"`
	ValueFrom json.RawMessage `json:"valueFrom,omitempty"`
}

// MetricSelector names metrics ("*" for all).
type MetricSelector struct {
	MetricName string `json:"metricName"`
}

// MeasurementRetention keeps Limit measurements of the named metrics.
type MeasurementRetention struct {
	MetricName string `json:"metricName"`
	Limit      int32  `json:"limit"`
}

// Metric is one measured value and how it is judged.
type Metric struct {
	Name                    string              `json:"name"`
	Interval                string              `json:"interval,omitempty"`
	InitialDelay            string              `json:"initialDelay,omitempty"`
	Count                   *intstr.IntOrString `json:"count,omitempty"`
	SuccessCondition        string              `json:"successCondition,omitempty"`
	FailureCondition        string              `json:"failureCondition,omitempty"`
	FailureLimit            *intstr.IntOrString `json:"failureLimit,omitempty"`
	InconclusiveLimit       *intstr.IntOrString `json:"inconclusiveLimit,omitempty"`
	ConsecutiveErrorLimit   *intstr.IntOrString `json:"consecutiveErrorLimit,omitempty"`
	ConsecutiveSuccessLimit *intstr.IntOrString `json:"consecutiveSuccessLimit,omitempty"`
	Provider                MetricProvider      `json:"provider"`
}

// MetricProvider says where a measurement comes from; one field is set.
// Providers mlcd does not implement are kept (and reported as an error
// when measured).
type MetricProvider struct {
	Prometheus *PrometheusMetric `json:"prometheus,omitempty"`
	Web        *WebMetric        `json:"web,omitempty"`
	// Plugin holds mlcd's own providers under Argo Rollouts' plugin key:
	// "mlcd/registry" and "mlcd/golden-set".
	Plugin map[string]json.RawMessage `json:"plugin,omitempty"`
	// Job, Datadog, NewRelic, Wavefront, Kayenta, CloudWatch, Graphite,
	// InfluxDB, SkyWalking are Argo Rollouts providers mlcd keeps but does
	// not run.
	Job        json.RawMessage `json:"job,omitempty"`
	Datadog    json.RawMessage `json:"datadog,omitempty"`
	NewRelic   json.RawMessage `json:"newRelic,omitempty"`
	Wavefront  json.RawMessage `json:"wavefront,omitempty"`
	Kayenta    json.RawMessage `json:"kayenta,omitempty"`
	CloudWatch json.RawMessage `json:"cloudWatch,omitempty"`
	Graphite   json.RawMessage `json:"graphite,omitempty"`
	InfluxDB   json.RawMessage `json:"influxdb,omitempty"`
	SkyWalking json.RawMessage `json:"skywalking,omitempty"`
}

// PrometheusMetric is an instant query.
type PrometheusMetric struct {
	Address string `json:"address,omitempty"`
	Query   string `json:"query,omitempty"`
	// Timeout in seconds.
	Timeout *int64 `json:"timeout,omitempty"`
}

// WebMetric is an HTTP request whose JSON reply is the result.
type WebMetric struct {
	URL            string          `json:"url"`
	Method         string          `json:"method,omitempty"`
	Headers        []WebHeader     `json:"headers,omitempty"`
	Body           string          `json:"body,omitempty"`
	JSONBody       json.RawMessage `json:"jsonBody,omitempty"`
	JSONPath       string          `json:"jsonPath,omitempty"`
	TimeoutSeconds int64           `json:"timeoutSeconds,omitempty"`
	Insecure       bool            `json:"insecure,omitempty"`
}

// WebHeader is one request header.
type WebHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}
