package render

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"
)

// Bounds on what one render may cost. A repository is input from whoever
// can push to it: a template that loops a hundred million times or a file
// of a hundred megabytes must fail that app with a clear condition, not
// take the controller's memory or a worker forever.
const (
	// MaxFileSize is the largest file mlcd reads in an app's path.
	// Kubernetes stores objects of at most 1.5 MiB; 16 MiB leaves room
	// for CRD bundles and charts' embedded files.
	MaxFileSize = 16 << 20
	// MaxTemplateItems bounds the lists Sprig's until, untilStep and seq
	// build (Helm charts use them for replica indexes and ports).
	MaxTemplateItems = 100_000
	// MaxTemplateString bounds one string Sprig's repeat builds.
	MaxTemplateString = 4 << 20
	// RenderTimeout bounds one Helm render. Go's template engine cannot
	// be interrupted: a render past it is abandoned (it has no effect)
	// and the app fails with a condition.
	RenderTimeout = 30 * time.Second
)

// checkFileSizes refuses an app path holding a file larger than
// MaxFileSize, naming it. Symbolic links are not followed (source.Join
// confines the ones that are read).
func checkFileSizes(root, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable entries are reported by the renderer that reads them
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() <= MaxFileSize {
			return nil
		}
		return fmt.Errorf("file %s is %s, larger than the %s mlcd reads in an app's path", rel(root, p), mib(info.Size()), mib(MaxFileSize))
	})
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// boundedFuncs replaces the Sprig functions that allocate in proportion to
// an argument with versions that refuse more than the bounds above.
func boundedFuncs() template.FuncMap {
	sf := sprig.TxtFuncMap()
	until := sf["until"].(func(int) []int)
	untilStep := sf["untilStep"].(func(int, int, int) []int)
	seq := sf["seq"].(func(...int) string)
	items := func(fn string, start, stop, step int) error {
		if step == 0 || (stop > start) != (step > 0) {
			return nil
		}
		if n := (stop - start) / step; n > MaxTemplateItems || n < 0 {
			return fmt.Errorf("%s: %d items, more than the %d a template may build", fn, n, MaxTemplateItems)
		}
		return nil
	}
	return template.FuncMap{
		"until": func(count int) ([]int, error) {
			step := 1
			if count < 0 {
				step = -1
			}
			if err := items("until", 0, count, step); err != nil {
				return nil, err
			}
			return until(count), nil
		},
		"untilStep": func(start, stop, step int) ([]int, error) {
			if err := items("untilStep", start, stop, step); err != nil {
				return nil, err
			}
			return untilStep(start, stop, step), nil
		},
		"seq": func(params ...int) (string, error) {
			start, end, step := 1, 0, 1
			switch len(params) {
			case 1:
				end = params[0]
			case 2:
				start, end = params[0], params[1]
			case 3:
				start, step, end = params[0], params[1], params[2]
			}
			if len(params) < 3 && end < start {
				step = -1
			}
			if err := items("seq", start, end, step); err != nil {
				return "", err
			}
			return seq(params...), nil
		},
		"repeat": func(count int, str string) (string, error) {
			if count > 0 && len(str) > 0 && count > MaxTemplateString/len(str) {
				return "", fmt.Errorf("repeat: %d × %d bytes, more than the %s a template may build", count, len(str), mib(MaxTemplateString))
			}
			return strings.Repeat(str, max(count, 0)), nil
		},
	}
}
