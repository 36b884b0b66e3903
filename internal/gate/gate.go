// Package gate decides whether a model version may be deployed to an
// environment: it exists in the registry and is READY, it passes the
// offline-metric gates of its ModelPolicy, and it already runs healthy in
// the environment the policy requires first (whose registry alias the
// controller moves only after a Synced and Healthy sync). The controller
// runs it before applying; `mlcd model check` runs it in CI. It reads the
// registry and nothing else.
package gate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/registry"
)

// Check names, as the seed's CI lists them.
const (
	CheckExists  = "model exists in registry"
	CheckOffline = "passed offline tests"
	CheckStaging = "staging deployment successful"
)

// RanHealthy reports whether mlcd's record shows version of model Synced
// and Healthy in env, and not reverted there since.
type RanHealthy func(model, env, version string) bool

// DeployedTagPrefix + environment is the version tag the controller sets
// when the version runs Synced and Healthy there.
const DeployedTagPrefix = "mlcd.deployed."

// Check is one named check and its outcome.
type Check struct {
	Name    string
	OK      bool
	Message string
}

// Result is the verdict on one model version for one environment.
type Result struct {
	Model, Env, Version string
	// Registry is the resolved registry version; nil when it was not found.
	Registry *registry.ModelVersion
	Checks   []Check
}

// OK reports whether every check passed.
func (r Result) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Failed returns the failed checks.
func (r Result) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// Summary is one line naming each failed check.
func (r Result) Summary() string {
	var parts []string
	for _, c := range r.Failed() {
		parts = append(parts, fmt.Sprintf("%s: %s", c.Name, c.Message))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("model %s %s passed all checks for %s", r.Model, r.Version, r.Env)
	}
	return fmt.Sprintf("model %s %s may not deploy to %s: %s", r.Model, r.Version, r.Env, strings.Join(parts, "; "))
}

// Registry is what the gate reads.
type Registry interface {
	registry.VersionSearcher
	GetVersionByAlias(ctx context.Context, name, alias string) (*registry.ModelVersion, error)
	VersionMetrics(ctx context.Context, v *registry.ModelVersion) (map[string]float64, error)
}

// ErrRegistry marks a registry that could not be asked (down, timing out,
// refusing credentials): the caller fails closed.
var ErrRegistry = errors.New("registry unavailable")

// Evaluate runs the checks for version (as written in Git) in env.
//
// ranHealthy reports whether mlcd's own record (an Application's history
// on the cluster) shows the version Synced and Healthy in env and never
// reverted there; such a version (a rollback) is exempt from the required
// environment and the comparison with what runs. nil exempts nothing. A
// registry tag, which any registry writer can set, never exempts.
func Evaluate(ctx context.Context, reg Registry, p *v1alpha1.ModelPolicy, env, version string, ranHealthy RanHealthy) (Result, error) {
	res := Result{Model: p.Spec.RegisteredModel, Env: env, Version: version}
	e, ok := p.Environment(env)
	if !ok {
		return res, fmt.Errorf("ModelPolicy %s has no environment %s", p.Name, env)
	}
	model := p.Spec.RegisteredModel

	v, err := registry.Resolve(ctx, reg, model, version)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		res.Checks = append(res.Checks,
			Check{Name: CheckExists, Message: fmt.Sprintf("%s has no version %s", model, version)},
			Check{Name: CheckOffline, Message: "not evaluated: the version does not exist"})
		if e.Requires != "" {
			res.Checks = append(res.Checks, Check{Name: CheckStaging, Message: "not evaluated: the version does not exist"})
		}
		return res, nil
	case err != nil && (isAPIError(err) || errors.Is(err, registry.ErrAmbiguous)):
		res.Checks = append(res.Checks, Check{Name: CheckExists, Message: err.Error()})
		return res, nil
	case err != nil:
		return res, fmt.Errorf("%w: %v", ErrRegistry, err)
	}
	res.Registry = v
	if v.Status != registry.StatusReady {
		res.Checks = append(res.Checks, Check{Name: CheckExists, Message: fmt.Sprintf("%s version %s (%s) is %s, not READY", model, v.Version, version, v.Status)})
	} else {
		res.Checks = append(res.Checks, Check{Name: CheckExists, OK: true, Message: fmt.Sprintf("%s version %s is READY", model, v.Version)})
	}

	// A version that already ran healthy in this environment (a rollback)
	// needs no newer evidence: the required environment and the
	// comparison with what runs now do not apply to it.
	before := ranHealthy != nil && (ranHealthy(model, env, version) || ranHealthy(model, env, v.Version))

	offline, err := offlineCheck(ctx, reg, p, v, before)
	if err != nil {
		return res, err
	}
	res.Checks = append(res.Checks, offline)

	if e.Requires != "" && before {
		res.Checks = append(res.Checks, Check{Name: CheckStaging, OK: true, Message: fmt.Sprintf("version %s ran in %s before (rollback)", v.Version, env)})
	} else if e.Requires != "" {
		c := Check{Name: CheckStaging}
		if e.Requires != "staging" {
			c.Name = e.Requires + " deployment successful"
		}
		cur, err := reg.GetVersionByAlias(ctx, model, e.Requires)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			c.Message = fmt.Sprintf("nothing is deployed to %s yet (no registry alias %q)", e.Requires, e.Requires)
		case err != nil:
			return res, fmt.Errorf("%w: %v", ErrRegistry, err)
		case cur.Version != v.Version:
			tag, _ := cur.Tag(registry.VersionTag)
			c.Message = fmt.Sprintf("%s runs version %s (%s), not %s (%s)", e.Requires, cur.Version, tag, v.Version, version)
		default:
			c.OK, c.Message = true, fmt.Sprintf("%s runs version %s healthy", e.Requires, v.Version)
		}
		res.Checks = append(res.Checks, c)
	}
	return res, nil
}

func offlineCheck(ctx context.Context, reg Registry, p *v1alpha1.ModelPolicy, v *registry.ModelVersion, rollback bool) (Check, error) {
	c := Check{Name: CheckOffline, OK: true}
	if len(p.Spec.Gates) == 0 {
		c.Message = "no gates declared"
		return c, nil
	}
	metrics, err := reg.VersionMetrics(ctx, v)
	if err != nil {
		return c, fmt.Errorf("%w: read metrics of version %s: %v", ErrRegistry, v.Version, err)
	}
	var fails, passes []string
	for _, g := range p.Spec.Gates {
		got, ok := metrics[g.Metric]
		if !ok {
			fails = append(fails, fmt.Sprintf("metric %s is missing from version %s", g.Metric, v.Version))
			continue
		}
		if g.NotWorseThan != "" && rollback {
			passes = append(passes, fmt.Sprintf("%s: not compared with %s (rollback to a version that ran there)", g.Metric, g.NotWorseThan))
			continue
		}
		if g.NotWorseThan != "" {
			base, err := reg.GetVersionByAlias(ctx, p.Spec.RegisteredModel, g.NotWorseThan)
			if errors.Is(err, registry.ErrNotFound) {
				passes = append(passes, fmt.Sprintf("%s: nothing in %s to compare with", g.Metric, g.NotWorseThan))
				continue
			}
			if err != nil {
				return c, fmt.Errorf("%w: %v", ErrRegistry, err)
			}
			baseMetrics, err := reg.VersionMetrics(ctx, base)
			if err != nil {
				return c, fmt.Errorf("%w: %v", ErrRegistry, err)
			}
			want, ok := baseMetrics[g.Metric]
			if !ok {
				fails = append(fails, fmt.Sprintf("metric %s is missing from the %s version %s", g.Metric, g.NotWorseThan, base.Version))
				continue
			}
			worse := got < want-g.Tolerance
			if g.LowerIsBetter {
				worse = got > want+g.Tolerance
			}
			if worse {
				fails = append(fails, fmt.Sprintf("%s %g is worse than %s's %g (tolerance %g)", g.Metric, got, g.NotWorseThan, want, g.Tolerance))
			} else {
				passes = append(passes, fmt.Sprintf("%s %g not worse than %s's %g", g.Metric, got, g.NotWorseThan, want))
			}
			continue
		}
		if !compare(got, strings.TrimSpace(g.Op), *g.Value) {
			fails = append(fails, fmt.Sprintf("%s %g fails %s %g", g.Metric, got, g.Op, *g.Value))
		} else {
			passes = append(passes, fmt.Sprintf("%s %g %s %g", g.Metric, got, g.Op, *g.Value))
		}
	}
	if len(fails) > 0 {
		c.OK, c.Message = false, strings.Join(fails, "; ")
	} else {
		c.Message = strings.Join(passes, "; ")
	}
	return c, nil
}

func compare(got float64, op string, want float64) bool {
	switch op {
	case ">=":
		return got >= want
	case ">":
		return got > want
	case "<=":
		return got <= want
	case "<":
		return got < want
	case "==":
		return got == want
	}
	return false
}

// isAPIError reports an answer from the registry (as opposed to no answer).
func isAPIError(err error) bool {
	var e *registry.Error
	return errors.As(err, &e) && e.Status < 500 && e.Status != 401 && e.Status != 403 && e.Status != 429
}
