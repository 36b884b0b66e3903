package source

import (
	"reflect"
	"testing"
)

func TestGeneratePathsAndAnyUnder(t *testing.T) {
	for _, c := range []struct {
		base, list string
		want       []string
	}{
		{"models/fraud", ".", []string{"models/fraud"}},
		{"models/fraud", ".; /docs ;../../base", []string{"models/fraud", "docs", "base"}},
		{"/models/fraud/", "/", []string{"."}},
		{"", "values", []string{"values"}},
		{"models/fraud", "", nil},
	} {
		if got := GeneratePaths(c.base, c.list); !reflect.DeepEqual(got, c.want) {
			t.Errorf("GeneratePaths(%q, %q) = %q, want %q", c.base, c.list, got, c.want)
		}
	}
	dirs := []string{"models/fraud", "base"}
	for files, want := range map[string]bool{
		"models/fraud/values.yaml": true, "base": true, "base/chart/Chart.yaml": true,
		"models/fraud-detection/values.yaml": false, "basement/x": false, "README.md": false,
	} {
		if got := AnyUnder(dirs, []string{files}); got != want {
			t.Errorf("AnyUnder(%q, %q) = %v, want %v", dirs, files, got, want)
		}
	}
	if !AnyUnder([]string{"."}, []string{"anything"}) || AnyUnder(dirs, nil) {
		t.Error(`"." holds everything; no files touch nothing`)
	}
}
