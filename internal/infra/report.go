package infra

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/mlcd-dev/mlcd/internal/junit"
)

// Report is what `mlcd infra check` found.
type Report struct {
	Dir      string    `json:"dir"`
	Findings []Finding `json:"findings"`
	// Changes between --base and --head (empty without them).
	Changes []Change `json:"changes,omitempty"`
	// Plan is the plan summary of tofu/terraform, or why there is none.
	Plan string `json:"plan,omitempty"`
}

// WriteTable prints findings, then changes with their review flags.
func (r *Report) WriteTable(w io.Writer) {
	if len(r.Findings) == 0 {
		fmt.Fprintf(w, "%s: no findings\n", r.Dir)
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FILE\tLINE\tCHECK\tMESSAGE")
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", f.File, f.Line, f.Check, f.Message)
		}
		tw.Flush()
	}
	if len(r.Changes) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RESOURCE\tACTION\tDETAIL\tREVIEW")
		for _, c := range r.Changes {
			var detail []string
			for _, a := range c.Attrs {
				detail = append(detail, fmt.Sprintf("%s: %s → %s", a.Path, dashIfEmpty(a.From), dashIfEmpty(a.To)))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Address, c.Action, strings.Join(detail, "; "), c.Review)
		}
		tw.Flush()
	}
	if r.Plan != "" {
		fmt.Fprintf(w, "\nplan: %s\n", r.Plan)
	}
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteJUnit writes one failed case per finding (one passing "validate"
// case when there is none) and one passing case per change, its review
// flag in system-out.
func (r *Report) WriteJUnit(w io.Writer) error {
	s := junit.Suite{Name: "mlcd infra check"}
	for _, f := range r.Findings {
		s.Add(junit.Case{Name: f.Check + " " + f.File + ":" + fmt.Sprint(f.Line), ClassName: r.Dir, Failure: &junit.Failure{Message: f.Message, Text: f.String()}})
	}
	if len(r.Findings) == 0 {
		s.Add(junit.Case{Name: "validate", ClassName: r.Dir})
	}
	for _, c := range r.Changes {
		jc := junit.Case{Name: c.Action + " " + c.Address, ClassName: r.Dir + ".changes"}
		if c.Review != "" {
			jc.SystemOut = "review: " + c.Review
		}
		s.Add(jc)
	}
	return s.Write(w)
}
