// Package analysis runs Argo Rollouts' AnalysisTemplates for a canary:
// it resolves templates and arguments into metrics, says which
// measurements are due, takes them through a provider (Prometheus, web,
// mlcd's registry comparison) and judges them with Argo Rollouts' rules
// (conditions in expr-lang/expr over `result`, failureLimit,
// inconclusiveLimit, consecutiveErrorLimit, count, interval). Everything
// but the providers is pure; the state lives in the caller's
// AnalysisRunStatus.
package analysis

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// Phases of a measurement, a metric and a run (Argo Rollouts' names).
const (
	Pending      = "Pending"
	Running      = "Running"
	Successful   = "Successful"
	Failed       = "Failed"
	Error        = "Error"
	Inconclusive = "Inconclusive"
)

// DefaultMeasurementRetention is how many measurements a metric keeps.
const DefaultMeasurementRetention = 10

// Spec is what a run measures: the templates' metrics with the arguments
// substituted.
type Spec struct {
	Metrics []v1alpha1.Metric
	// DryRun metrics are measured and shown but never fail the run.
	DryRun map[string]bool
	// Retention is the measurements kept per metric.
	Retention map[string]int
}

var argRE = regexp.MustCompile(`\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}`)

// Resolve merges templates (in order) and substitutes arguments: args
// given by the rollout win over the templates' defaults; an argument
// without a value is an error naming it.
func Resolve(templates []v1alpha1.AnalysisTemplateSpec, args []v1alpha1.AnalysisArg) (Spec, error) {
	values := map[string]string{}
	declared := map[string]bool{}
	for _, t := range templates {
		for _, a := range t.Args {
			declared[a.Name] = true
			if a.Value != nil {
				values[a.Name] = *a.Value
			}
		}
	}
	for _, a := range args {
		values[a.Name] = a.Value
	}
	for name := range declared {
		if _, ok := values[name]; !ok {
			return Spec{}, fmt.Errorf("analysis argument %q has no value (give it in the rollout's analysis args)", name)
		}
	}
	spec := Spec{DryRun: map[string]bool{}, Retention: map[string]int{}}
	seen := map[string]bool{}
	for _, t := range templates {
		for _, m := range t.Metrics {
			if seen[m.Name] {
				return Spec{}, fmt.Errorf("metric %q is defined by two templates", m.Name)
			}
			seen[m.Name] = true
			sub, err := substitute(m, values)
			if err != nil {
				return Spec{}, err
			}
			if err := validate(sub); err != nil {
				return Spec{}, err
			}
			spec.Metrics = append(spec.Metrics, sub)
		}
		for _, d := range t.DryRun {
			spec.DryRun[d.MetricName] = true
		}
		for _, r := range t.MeasurementRetention {
			spec.Retention[r.MetricName] = int(r.Limit)
		}
	}
	if spec.DryRun["*"] {
		for _, m := range spec.Metrics {
			spec.DryRun[m.Name] = true
		}
	}
	return spec, nil
}

// substitute replaces {{args.NAME}} in every string of the metric.
func substitute(m v1alpha1.Metric, values map[string]string) (v1alpha1.Metric, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return m, err
	}
	var missing string
	out := argRE.ReplaceAllStringFunc(string(data), func(s string) string {
		name := argRE.FindStringSubmatch(s)[1]
		v, ok := values[name]
		if !ok {
			missing = name
			return s
		}
		q, _ := json.Marshal(v)
		return string(q[1 : len(q)-1])
	})
	if missing != "" {
		return m, fmt.Errorf("metric %q uses {{args.%s}}, which no template declares", m.Name, missing)
	}
	var res v1alpha1.Metric
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return m, fmt.Errorf("metric %q after argument substitution: %w", m.Name, err)
	}
	return res, nil
}

func validate(m v1alpha1.Metric) error {
	if c := intOr(m.Count, 0); c > 1 && m.Interval == "" {
		return fmt.Errorf("metric %q: count %d needs an interval", m.Name, c)
	}
	for _, d := range []string{m.Interval, m.InitialDelay} {
		if d == "" {
			continue
		}
		if _, err := v1alpha1.ParseRolloutDuration(d); err != nil {
			return fmt.Errorf("metric %q: %w", m.Name, err)
		}
	}
	for _, c := range []string{m.SuccessCondition, m.FailureCondition} {
		if c == "" {
			continue
		}
		if _, err := parser.Parse(c); err != nil {
			return fmt.Errorf("metric %q: condition %q: %w", m.Name, c, err)
		}
	}
	return nil
}

func intOr(v *intstr.IntOrString, def int) int {
	if v == nil {
		return def
	}
	if v.Type == intstr.Int {
		return v.IntValue()
	}
	var n int
	if _, err := fmt.Sscanf(v.StrVal, "%d", &n); err != nil {
		return def
	}
	return n
}

func duration(s string) time.Duration {
	d, _ := v1alpha1.ParseRolloutDuration(s)
	return d
}

// conditionEnv is what a condition sees, as in Argo Rollouts.
func conditionEnv(result any) map[string]any {
	return map[string]any{
		"result":  result,
		"asInt":   asInt,
		"asFloat": asFloat,
		"isNaN":   math.IsNaN,
		"isInf":   func(f float64) bool { return math.IsInf(f, 0) },
		"isNil":   func() bool { return result == nil },
		"default": func(def any) any {
			if result == nil {
				return def
			}
			return result
		},
	}
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case int:
		return int64(x)
	case int64:
		return x
	case string:
		var n int64
		if _, err := fmt.Sscanf(x, "%d", &n); err == nil {
			return n
		}
	}
	panic(fmt.Sprintf("asInt: %v is not a number", v))
}

func asFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case string:
		var f float64
		if _, err := fmt.Sscanf(x, "%g", &f); err == nil {
			return f
		}
	}
	panic(fmt.Sprintf("asFloat: %v is not a number", v))
}

// Evaluate judges one result by the metric's conditions, as Argo
// Rollouts does: without conditions a result succeeds; with only a
// success condition, false is a failure; with only a failure condition,
// false is a success; with both, neither true is Inconclusive.
func Evaluate(m v1alpha1.Metric, result any) (string, error) {
	eval := func(cond string) (bool, error) {
		out, err := expr.Eval(cond, conditionEnv(result))
		if err != nil {
			return false, fmt.Errorf("condition %q: %w", cond, err)
		}
		b, ok := out.(bool)
		if !ok {
			return false, fmt.Errorf("condition %q returned %v, not a boolean", cond, out)
		}
		return b, nil
	}
	var success, failure bool
	var err error
	if m.SuccessCondition != "" {
		if success, err = eval(m.SuccessCondition); err != nil {
			return Error, err
		}
	}
	if m.FailureCondition != "" {
		if failure, err = eval(m.FailureCondition); err != nil {
			return Error, err
		}
	}
	switch {
	case m.SuccessCondition == "" && m.FailureCondition == "":
		return Successful, nil
	case m.SuccessCondition != "" && m.FailureCondition == "":
		failure = !success
	case m.SuccessCondition == "" && m.FailureCondition != "":
		success = !failure
	}
	switch {
	case failure:
		return Failed, nil
	case !success:
		return Inconclusive, nil
	}
	return Successful, nil
}

// Assess is a metric's phase from its counts, Argo Rollouts' rules:
// failureLimit and inconclusiveLimit default 0, consecutiveErrorLimit 4;
// count (1 without an interval) measurements complete it, as does
// consecutiveSuccessLimit.
func Assess(m v1alpha1.Metric, r v1alpha1.MetricResult) string {
	if r.Count == 0 && r.Error == 0 {
		return Pending
	}
	if n := len(r.Measurements); n > 0 && r.Measurements[n-1].FinishedAt == nil {
		return Running
	}
	failureLimit := intOr(m.FailureLimit, 0)
	inconclusiveLimit := intOr(m.InconclusiveLimit, 0)
	errorLimit := intOr(m.ConsecutiveErrorLimit, 4)
	switch {
	case failureLimit >= 0 && int(r.Failed) > failureLimit:
		return Failed
	case inconclusiveLimit >= 0 && int(r.Inconclusive) > inconclusiveLimit:
		return Inconclusive
	case int(r.ConsecutiveError) > errorLimit:
		return Error
	}
	if l := intOr(m.ConsecutiveSuccessLimit, 0); l > 0 && int(r.ConsecutiveSuccess) >= l {
		return Successful
	}
	if count := effectiveCount(m); count > 0 && int(r.Count) >= count {
		if r.Inconclusive > 0 {
			return Inconclusive
		}
		return Successful
	}
	return Running
}

// effectiveCount is the measurements a metric takes (0: unbounded).
func effectiveCount(m v1alpha1.Metric) int {
	if m.Count != nil {
		return intOr(m.Count, 0)
	}
	if m.Interval == "" {
		return 1
	}
	return 0
}

// Terminal reports whether a phase is final.
func Terminal(phase string) bool {
	return phase == Successful || phase == Failed || phase == Error || phase == Inconclusive
}

// Next says when a metric's next measurement is due (ok false: none is).
func Next(m v1alpha1.Metric, r v1alpha1.MetricResult, started time.Time) (time.Time, bool) {
	if Terminal(r.Phase) {
		return time.Time{}, false
	}
	if len(r.Measurements) == 0 {
		return started.Add(duration(m.InitialDelay)), true
	}
	last := r.Measurements[len(r.Measurements)-1]
	at := last.StartedAt.Time
	if last.FinishedAt != nil {
		at = last.FinishedAt.Time
	}
	return at.Add(duration(m.Interval)), true
}

// Record adds a measurement to the metric's result, updates its counts and
// phase, and trims the kept measurements to retention.
func Record(m v1alpha1.Metric, r *v1alpha1.MetricResult, meas v1alpha1.Measurement, retention int) {
	r.Name = m.Name
	r.Count++
	switch meas.Phase {
	case Successful:
		r.Successful++
		r.ConsecutiveSuccess++
		r.ConsecutiveError = 0
	case Failed:
		r.Failed++
		r.ConsecutiveSuccess, r.ConsecutiveError = 0, 0
	case Inconclusive:
		r.Inconclusive++
		r.ConsecutiveSuccess, r.ConsecutiveError = 0, 0
	case Error:
		r.Error++
		r.ConsecutiveError++
		r.ConsecutiveSuccess = 0
		// An error is retried: it does not count towards count.
		r.Count--
	}
	if retention <= 0 {
		retention = DefaultMeasurementRetention
	}
	r.Measurements = append(r.Measurements, meas)
	if len(r.Measurements) > retention {
		r.Measurements = slices.Clone(r.Measurements[len(r.Measurements)-retention:])
	}
	r.Phase = Assess(m, *r)
	r.Message = meas.Message
}

// RunPhase is the phase of a run from its metrics: the worst of the
// counted metrics (Failed or Error before Inconclusive before Running);
// Successful when all are. Dry-run metrics never count.
func RunPhase(spec Spec, results []v1alpha1.MetricResult) (string, string) {
	byName := map[string]v1alpha1.MetricResult{}
	for _, r := range results {
		byName[r.Name] = r
	}
	phase, msg := Successful, ""
	rank := map[string]int{Successful: 0, Running: 1, Pending: 1, Inconclusive: 2, Error: 3, Failed: 3}
	for _, m := range spec.Metrics {
		if spec.DryRun[m.Name] {
			continue
		}
		r, ok := byName[m.Name]
		p := Pending
		if ok {
			p = r.Phase
		}
		if rank[p] > rank[phase] {
			phase = p
			msg = describe(m, r)
		}
	}
	if phase == Pending {
		phase = Running
	}
	return phase, msg
}

// describe says what a metric saw: name, last value and the condition.
func describe(m v1alpha1.Metric, r v1alpha1.MetricResult) string {
	var last v1alpha1.Measurement
	if n := len(r.Measurements); n > 0 {
		last = r.Measurements[n-1]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "metric %s %s", m.Name, strings.ToLower(r.Phase))
	if last.Value != "" {
		fmt.Fprintf(&b, ": value %s", last.Value)
	}
	switch {
	case r.Phase == Failed && m.FailureCondition != "":
		fmt.Fprintf(&b, " meets failure condition %q", m.FailureCondition)
	case r.Phase == Failed || r.Phase == Inconclusive:
		if m.SuccessCondition != "" {
			fmt.Fprintf(&b, " does not meet success condition %q", m.SuccessCondition)
		}
	}
	if last.Message != "" {
		fmt.Fprintf(&b, " (%s)", last.Message)
	}
	fmt.Fprintf(&b, " [%d measured: %d successful, %d failed, %d inconclusive, %d errors]", r.Count, r.Successful, r.Failed, r.Inconclusive, r.Error)
	return b.String()
}

// Measured makes a finished measurement from a provider's result.
func Measured(m v1alpha1.Metric, started time.Time, value any, verdict string, err error) v1alpha1.Measurement {
	now := metav1.Now()
	meas := v1alpha1.Measurement{StartedAt: metav1.NewTime(started), FinishedAt: &now}
	if err != nil {
		meas.Phase, meas.Message = Error, err.Error()
		return meas
	}
	meas.Value = capValue(format(value))
	if verdict != "" && m.SuccessCondition == "" && m.FailureCondition == "" {
		meas.Phase = verdict
		return meas
	}
	phase, err := Evaluate(m, value)
	meas.Phase = phase
	if err != nil {
		meas.Message = err.Error()
	}
	return meas
}

// MaxValueBytes caps what a measurement stores of its value: the value
// the metric's query or jsonPath selected, never a whole reply a tenant's
// URL chose (the ModelRollout is readable by everyone who can read apps).
const MaxValueBytes = 1024

func capValue(s string) string {
	if len(s) <= MaxValueBytes {
		return s
	}
	cut := MaxValueBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes, cut at %d)", len(s), MaxValueBytes)
}

func format(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return fmt.Sprintf("%g", x)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}
