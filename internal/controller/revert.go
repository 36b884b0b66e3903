package controller

import (
	"context"
	"regexp"
	"slices"
	"strings"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

const maxReverted = 20

var revertRE = regexp.MustCompile(`This reverts commit ([0-9a-f]{40})`)

// recordRevert notes the commits that revert commits between the last
// synced revision (exclusive) and sha undid (an approval commit may sit on
// top of the revert). It reports whether it found any.
func (r *ApplicationReconciler) recordRevert(ctx context.Context, app *v1alpha1.Application, url, sha, since string) bool {
	c, err := r.engine.Sources.Commit(ctx, url, sha)
	if err != nil {
		return false
	}
	list := reverted(app)
	added := false
	for i := 0; i < 50 && c != nil && c.Hash.String() != since; i++ {
		if m := revertRE.FindStringSubmatch(c.Message); m != nil && !slices.Contains(list, m[1]) {
			list = append(list, m[1])
			added = true
		}
		if c.NumParents() == 0 {
			break
		}
		if c, err = c.Parent(0); err != nil {
			break
		}
	}
	if !added {
		return false
	}
	if len(list) > maxReverted {
		list = list[len(list)-maxReverted:]
	}
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	app.Annotations[v1alpha1.RevertedAnnotation] = strings.Join(list, ",")
	return true
}

func reverted(app *v1alpha1.Application) []string {
	v := app.Annotations[v1alpha1.RevertedAnnotation]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}
