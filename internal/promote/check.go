package promote

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/go-git/go-git/v5"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/gate"
	"github.com/mlcd-dev/mlcd/internal/junit"
)

// Change is a model version a diff moves.
type Change struct {
	Deployment
	From string
}

// Changes lists the deployments whose effective version differs between
// base and head. Two different versions for one model and environment in
// one diff (a values file and a parameter that disagree) are an error.
//
// The ModelPolicies are read from base, so a change cannot delete or
// weaken the policy that gates it; headPolicies reads them from head
// instead (a policy change under its own review).
func Changes(repo *git.Repository, base, head string, headPolicies bool) ([]Change, error) {
	return ChangesWith(repo, base, head, ChangeOptions{HeadPolicies: headPolicies})
}

// ChangeOptions say where policies come from.
type ChangeOptions struct {
	// HeadPolicies reads mlcd.yaml files from head instead of base.
	HeadPolicies bool
	// Cluster are the cluster's ModelPolicy objects (mlcd model check
	// --kubeconfig).
	Cluster []v1alpha1.ModelPolicy
}

// ChangesWith is Changes with policies from the cluster too.
func ChangesWith(repo *git.Repository, base, head string, o ChangeOptions) ([]Change, error) {
	bt, ht, err := treesAt(repo, base, head)
	if err != nil {
		return nil, err
	}
	before, err := bt.DeploymentsUnder(bt, o.Cluster)
	if err != nil {
		return nil, fmt.Errorf("at %s: %w", base, err)
	}
	policies := bt
	if o.HeadPolicies {
		policies = ht
	}
	after, err := ht.DeploymentsUnder(policies, o.Cluster)
	if err != nil {
		return nil, fmt.Errorf("at %s: %w", head, err)
	}
	old := map[string]string{}
	oldValues := map[string]string{}
	for _, d := range before {
		old[d.Key()] = d.Version
		oldValues[d.Key()] = d.ValuesVersion
	}
	seen := map[string]Change{}
	var out []Change
	for _, d := range after {
		if prev, ok := seen[d.Key()]; ok && prev.Version != d.Version {
			return nil, fmt.Errorf("conflicting versions for %s in one change: %s (%s) and %s (%s)", d.Key(), prev.Version, prev.File, d.Version, d.File)
		}
		// A diff that moves both the overriding parameter and the values
		// file, to different versions, says two things at once.
		if d.Param && d.Version != old[d.Key()] && d.ValuesVersion != oldValues[d.Key()] && d.ValuesVersion != d.Version {
			return nil, fmt.Errorf("conflicting versions for %s in one change: %s in %s and %s in %s", d.Key(), d.Version, d.File, d.ValuesVersion, path.Join(d.Dir, d.Env.ValuesFile))
		}
		if d.Version == old[d.Key()] {
			continue
		}
		if d.Version == "" {
			return nil, fmt.Errorf("%s: version key %s is missing from %s", d.Key(), d.Policy.Spec.VersionKey, d.File)
		}
		c := Change{Deployment: d, From: old[d.Key()]}
		seen[d.Key()] = c
		out = append(out, c)
	}
	return out, nil
}

// CheckResult is a change with its gate verdict.
type CheckResult struct {
	Change
	gate.Result
}

// Check runs the gate for every change. ranHealthy is mlcd's record of
// versions that ran healthy per environment (nil: none is exempt).
func Check(ctx context.Context, reg gate.Registry, changes []Change, ranHealthy gate.RanHealthy) ([]CheckResult, error) {
	var out []CheckResult
	for _, c := range changes {
		res, err := gate.Evaluate(ctx, reg, c.Policy, c.Env.Name, c.Version, ranHealthy)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", c.Key(), c.Version, err)
		}
		out = append(out, CheckResult{Change: c, Result: res})
	}
	return out, nil
}

// WriteTable prints one line per check.
func WriteTable(w io.Writer, results []CheckResult) {
	fmt.Fprintf(w, "%-28s %-12s %-22s %-32s %-5s %s\n", "MODEL", "ENV", "VERSION", "CHECK", "OK", "DETAIL")
	for _, r := range results {
		for _, c := range r.Checks {
			ok := "yes"
			if !c.OK {
				ok = "NO"
			}
			fmt.Fprintf(w, "%-28s %-12s %-22s %-32s %-5s %s\n", r.Model, r.Env, r.From+" -> "+r.Version, c.Name, ok, c.Message)
		}
	}
}

// WriteGitHubAnnotations prints ::error lines for failed checks, pointing
// at the file that sets the version.
func WriteGitHubAnnotations(w io.Writer, results []CheckResult) {
	for _, r := range results {
		for _, c := range r.Failed() {
			fmt.Fprintf(w, "::error file=%s,title=%s::%s %s (%s): %s\n", r.File, c.Name, r.Model, r.Version, r.Env, strings.ReplaceAll(c.Message, "\n", " "))
		}
	}
}

// WriteJUnit writes a JUnit XML report, one test case per check.
func WriteJUnit(w io.Writer, results []CheckResult) error {
	s := junit.Suite{Name: "mlcd model check"}
	for _, r := range results {
		for _, c := range r.Checks {
			jc := junit.Case{Name: c.Name, ClassName: r.Model + "." + r.Env + "." + r.Version}
			if !c.OK {
				jc.Failure = &junit.Failure{Message: c.Message, Text: c.Message}
			}
			s.Add(jc)
		}
	}
	return s.Write(w)
}
