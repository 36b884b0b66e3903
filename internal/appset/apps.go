package appset

import (
	"fmt"

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
