package appset

import (
	"fmt"
	"strconv"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// Apps is a set's whole generation, as the controller, `mlcd appset
// generate` and `mlcd diff` all run it: the generators, the size bound,
// then the template. params counts the parameter sets. A generator's
// failure is a *GeneratorError (it may pass: Git, clusters); the size
// bound and the template fail until the set or its inputs change.
func Apps(set *v1alpha1.ApplicationSet, in Inputs) (apps []*v1alpha1.Application, params int, err error) {
	ps, err := Generate(set, in)
	if err != nil {
		return nil, 0, err
	}
	if err := CheckSize(set, len(ps)); err != nil {
		return nil, len(ps), err
	}
	apps, err = Render(set, ps)
	if err != nil {
		return nil, len(ps), fmt.Errorf("template: %w", err)
	}
	return apps, len(ps), nil
}

// DefaultMaxApplications bounds how many Applications one set may
// generate; the annotation MaxApplicationsAnnotation raises or lowers it.
// A generator that multiplies by mistake (a matrix over the wrong
// directory) is reported instead of flooding the cluster.
const DefaultMaxApplications = 5000

// MaxApplicationsAnnotation on a set overrides DefaultMaxApplications.
const MaxApplicationsAnnotation = "mlcd.io/max-applications"

// CheckSize refuses a generation of n parameter sets beyond the set's
// bound, naming it and how to raise it.
func CheckSize(set *v1alpha1.ApplicationSet, n int) error {
	limit := DefaultMaxApplications
	if v, err := strconv.Atoi(set.Annotations[MaxApplicationsAnnotation]); err == nil && v > 0 {
		limit = v
	}
	if n > limit {
		return fmt.Errorf("the generators yield %d applications, more than the %d this set may create (annotation %s raises it)", n, limit, MaxApplicationsAnnotation)
	}
	return nil
}
