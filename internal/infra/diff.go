package infra

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Resource is one resource (or data source, or module call) as written.
type Resource struct {
	// Address is Terraform's: google_container_node_pool.gpu_pool,
	// data.google_project.p, module.vpc.
	Address string `json:"address"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	// Attrs are its arguments flattened to paths (nested blocks by type
	// and index: autoscaling.max_node_count, node_config.guest_accelerator[0].type)
	// with their source text.
	Attrs map[string]string `json:"-"`
}

// Resources reads every resource, data source and module call of the .tf
// files under dir. Files that do not parse are skipped (Validate reports
// them).
func Resources(fsys fs.FS, dir string) (map[string]*Resource, error) {
	out := map[string]*Resource{}
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".terraform" {
			return fs.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".tf") {
			return nil
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		f, diags := hclsyntax.ParseConfig(src, p, hcl.InitialPos)
		if diags.HasErrors() {
			return nil
		}
		prefix := ""
		if d := path.Dir(p); d != dir && d != "." {
			prefix = strings.TrimPrefix(d, dir+"/") + ":"
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			var addr string
			switch {
			case b.Type == "resource" && len(b.Labels) == 2:
				addr = b.Labels[0] + "." + b.Labels[1]
			case b.Type == "data" && len(b.Labels) == 2:
				addr = "data." + b.Labels[0] + "." + b.Labels[1]
			case b.Type == "module" && len(b.Labels) == 1:
				addr = "module." + b.Labels[0]
			default:
				continue
			}
			r := &Resource{Address: prefix + addr, File: p, Line: b.DefRange().Start.Line, Attrs: map[string]string{}}
			flatten(src, b.Body, "", r.Attrs)
			out[r.Address] = r
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return out, nil
}

func flatten(src []byte, body *hclsyntax.Body, prefix string, out map[string]string) {
	for name, a := range body.Attributes {
		out[prefix+name] = strings.Join(strings.Fields(string(a.Expr.Range().SliceBytes(src))), " ")
	}
	count := map[string]int{}
	for _, b := range body.Blocks {
		key := b.Type
		if len(b.Labels) > 0 {
			key += "." + strings.Join(b.Labels, ".")
		}
		i := count[key]
		count[key]++
		flatten(src, b.Body, fmt.Sprintf("%s%s[%d].", prefix, key, i), out)
	}
}

// Change is what a revision does to one resource.
type Change struct {
	Address string `json:"address"`
	// Action is added, changed or removed.
	Action string       `json:"action"`
	File   string       `json:"file"`
	Line   int          `json:"line"`
	Attrs  []AttrChange `json:"attributes,omitempty"`
	// Review, when set, says why a person should look (GPU or node pool).
	Review string `json:"review,omitempty"`
}

// AttrChange is one argument that differs ("" for absent).
type AttrChange struct {
	Path string `json:"path"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Diff lists what head adds, changes and removes relative to base,
// sorted by address.
func Diff(base, head map[string]*Resource) []Change {
	var out []Change
	for addr, h := range head {
		b, ok := base[addr]
		if !ok {
			out = append(out, Change{Address: addr, Action: "added", File: h.File, Line: h.Line, Review: review(addr, nil, h.Attrs)})
			continue
		}
		var attrs []AttrChange
		for p, v := range h.Attrs {
			if b.Attrs[p] != v {
				attrs = append(attrs, AttrChange{Path: p, From: b.Attrs[p], To: v})
			}
		}
		for p, v := range b.Attrs {
			if _, ok := h.Attrs[p]; !ok {
				attrs = append(attrs, AttrChange{Path: p, From: v})
			}
		}
		if len(attrs) > 0 {
			sort.Slice(attrs, func(i, j int) bool { return attrs[i].Path < attrs[j].Path })
			out = append(out, Change{Address: addr, Action: "changed", File: h.File, Line: h.Line, Attrs: attrs, Review: review(addr, attrs, h.Attrs)})
		}
	}
	for addr, b := range base {
		if _, ok := head[addr]; !ok {
			out = append(out, Change{Address: addr, Action: "removed", File: b.File, Line: b.Line, Review: review(addr, nil, b.Attrs)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// review flags GPU and node-pool changes: capacity and cost a reviewer
// should see (the seed's GPU inference pool).
func review(addr string, changed []AttrChange, attrs map[string]string) string {
	gpu := func(s string) bool {
		s = strings.ToLower(s)
		return strings.Contains(s, "gpu") || strings.Contains(s, "accelerator") || strings.Contains(s, "nvidia")
	}
	nodePool := strings.Contains(addr, "node_pool") || strings.Contains(addr, "node_group")
	var touched []string
	if changed == nil {
		for p, v := range attrs {
			if gpu(p) || gpu(v) {
				touched = append(touched, p)
			}
		}
	} else {
		for _, c := range changed {
			if gpu(c.Path) || gpu(c.From) || gpu(c.To) || (nodePool && (strings.Contains(c.Path, "node_count") || strings.Contains(c.Path, "machine_type"))) {
				touched = append(touched, c.Path)
			}
		}
	}
	sort.Strings(touched)
	switch {
	case len(touched) > 0 && nodePool:
		return "GPU node pool: " + strings.Join(touched, ", ")
	case len(touched) > 0:
		return "GPU: " + strings.Join(touched, ", ")
	case nodePool:
		return "node pool"
	}
	return ""
}
