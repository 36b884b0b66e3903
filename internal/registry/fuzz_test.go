package registry

import (
	"regexp"
	"strings"
	"testing"
)

var sqlTemplate = regexp.MustCompile(`^[A-Za-z_.()=!? 1]*$`)

// FuzzFilter: MLflow's filter grammar never panics, and a value never
// reaches the SQL text: every value is a bound parameter.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{"name = 'fraud-detection'", "name LIKE 'fraud%' AND tags.env = 'prod'", "tags.`a b` != \"x\"", "run_id = 'abc'", "name = 'x'; DROP TABLE models; --'", "name ILIKE '%' and name not like 'y'", "", "tags.= ''", "name = '"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		for _, target := range []filterTarget{modelFilter, versionFilter} {
			cond, args, err := parseFilter(filter, target)
			if err != nil {
				continue
			}
			if strings.Count(cond, "?") != len(args) {
				t.Fatalf("parseFilter(%q): %d placeholders for %d args: %s", filter, strings.Count(cond, "?"), len(args), cond)
			}
			// Built only from fixed templates: no quote, semicolon,
			// comment or other character a value could bring.
			if !sqlTemplate.MatchString(cond) {
				t.Fatalf("parseFilter(%q): SQL %q holds characters no template has", filter, cond)
			}
		}
	})
}
