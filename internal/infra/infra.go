// Package infra checks the Terraform/OpenTofu code kept beside the model
// deployments (infrastructure/terraform in the seed's layout) without
// providers or state: what `terraform validate` can check from the files
// alone, and which resources a change between two revisions adds,
// changes or removes — GPU and node-pool changes flagged for the
// reviewer. It parses with HashiCorp's HCL library and reads files from
// any fs.FS (a directory or a Git tree), so it is pure.
package infra

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Finding is one problem in the code.
type Finding struct {
	// Check names the rule: syntax, undeclared, duplicate,
	// required_providers, module_source.
	Check   string `json:"check"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

func (f Finding) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", f.File, f.Line, f.Check, f.Message)
}

// module is the parsed .tf files of one directory.
type module struct {
	dir    string
	files  map[string]*hcl.File
	blocks []*hclsyntax.Block
}

// Validate checks every module (directory with .tf files) under dir of
// fsys, following local module sources, and returns the findings sorted
// by file and line. Paths in findings are relative to fsys.
func Validate(fsys fs.FS, dir string) ([]Finding, error) {
	dirs, called, err := moduleDirs(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, d := range dirs {
		m, findings := parse(fsys, d)
		out = append(out, findings...)
		if m == nil {
			continue
		}
		// A directory another module calls is not a root module: it
		// need not declare required_providers itself.
		out = append(out, m.validate(fsys, !called[d])...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Line < out[j].Line
	})
	return out, nil
}

// moduleDirs lists the directories under dir holding .tf files, and those
// a local module source of another names.
func moduleDirs(fsys fs.FS, dir string) ([]string, map[string]bool, error) {
	called := map[string]bool{}
	seen := map[string]bool{}
	var dirs []string
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".terraform" || (strings.HasPrefix(d.Name(), ".") && p != dir)) {
			return fs.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".tf") && !seen[path.Dir(p)] {
			seen[path.Dir(p)] = true
			dirs = append(dirs, path.Dir(p))
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", dir, err)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		m, _ := parse(fsys, d)
		if m == nil {
			continue
		}
		for _, b := range m.blocks {
			if b.Type == "module" {
				if src, ok := literal(b.Body, "source"); ok && isLocal(src) {
					called[path.Clean(path.Join(d, src))] = true
				}
			}
		}
	}
	return dirs, called, nil
}

func parse(fsys fs.FS, dir string) (*module, []Finding) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, []Finding{{Check: "syntax", File: dir, Message: err.Error()}}
	}
	m := &module{dir: dir, files: map[string]*hcl.File{}}
	var out []Finding
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".tf") {
			continue
		}
		p := path.Join(dir, e.Name())
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, []Finding{{Check: "syntax", File: p, Message: err.Error()}}
		}
		f, diags := hclsyntax.ParseConfig(src, p, hcl.InitialPos)
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				out = append(out, finding("syntax", d.Subject, d.Summary+": "+d.Detail))
			}
		}
		if diags.HasErrors() {
			continue
		}
		m.files[p] = f
		m.blocks = append(m.blocks, f.Body.(*hclsyntax.Body).Blocks...)
	}
	return m, out
}

func finding(check string, r *hcl.Range, msg string) Finding {
	f := Finding{Check: check, Message: strings.TrimSuffix(strings.TrimSpace(msg), ":")}
	if r != nil {
		f.File, f.Line = r.Filename, r.Start.Line
	}
	return f
}

// validate checks one module: duplicate declarations, references to what
// it does not declare, required_providers (root modules), and local
// module sources staying inside fsys.
func (m *module) validate(fsys fs.FS, root bool) []Finding {
	var out []Finding
	declared := map[string]*hcl.Range{}
	declare := func(kind, key string, r hcl.Range) {
		if prev, dup := declared[key]; dup {
			out = append(out, finding("duplicate", &r, fmt.Sprintf("%s %s is declared twice (first at %s:%d)", kind, key, prev.Filename, prev.Start.Line)))
			return
		}
		declared[key] = &r
	}
	providers := map[string]bool{}
	var requiredProviders map[string]bool
	usedProviders := map[string]hcl.Range{}
	for _, b := range m.blocks {
		r := b.DefRange()
		switch b.Type {
		case "variable":
			if len(b.Labels) == 1 {
				declare("variable", "var."+b.Labels[0], r)
			}
		case "locals":
			for name, a := range b.Body.Attributes {
				declare("local", "local."+name, a.SrcRange)
			}
		case "resource":
			if len(b.Labels) == 2 {
				declare("resource", b.Labels[0]+"."+b.Labels[1], r)
				usedProviders[providerOf(b)] = r
			}
		case "data":
			if len(b.Labels) == 2 {
				declare("data source", "data."+b.Labels[0]+"."+b.Labels[1], r)
				usedProviders[providerOf(b)] = r
			}
		case "module":
			if len(b.Labels) == 1 {
				declare("module", "module."+b.Labels[0], r)
				out = append(out, m.checkSource(fsys, b)...)
			}
		case "output":
			if len(b.Labels) == 1 {
				declare("output", "output."+b.Labels[0], r)
			}
		case "provider":
			if len(b.Labels) == 1 {
				providers[b.Labels[0]] = true
			}
		case "terraform":
			for _, inner := range b.Body.Blocks {
				if inner.Type == "required_providers" {
					if requiredProviders == nil {
						requiredProviders = map[string]bool{}
					}
					for name := range inner.Body.Attributes {
						requiredProviders[name] = true
					}
				}
			}
		}
	}
	if root {
		if requiredProviders == nil && len(usedProviders) > 0 {
			first := m.blocks[0].DefRange()
			out = append(out, finding("required_providers", &first, fmt.Sprintf("module %s uses providers but has no terraform { required_providers { … } } block: pin each provider's source and version", m.dir)))
		} else {
			names := make([]string, 0, len(usedProviders))
			for p := range usedProviders {
				names = append(names, p)
			}
			sort.Strings(names)
			for _, p := range names {
				if !requiredProviders[p] {
					r := usedProviders[p]
					out = append(out, finding("required_providers", &r, fmt.Sprintf("provider %q is used but not listed in required_providers", p)))
				}
			}
		}
	}
	// References. Some arguments are not value expressions: a variable's
	// type, a provider reference, lifecycle attribute names; moved blocks
	// name what no longer exists.
	for _, b := range m.blocks {
		if b.Type == "terraform" || b.Type == "moved" || b.Type == "removed" {
			continue
		}
		var self string
		if b.Type == "resource" && len(b.Labels) == 2 {
			self = b.Labels[0] + "." + b.Labels[1]
		}
		walkExprs(b.Body, nil, func(e hclsyntax.Expression, iterators []string) {
			for _, t := range e.Variables() {
				if msg := undeclared(t, declared, iterators, self); msg != "" {
					rng := t.SourceRange()
					out = append(out, finding("undeclared", &rng, msg))
				}
			}
		})
	}
	return out
}

// providerOf is a resource's provider local name: its `provider`
// argument's root, else its type's prefix (google_container_cluster →
// google).
func providerOf(b *hclsyntax.Block) string {
	if a, ok := b.Body.Attributes["provider"]; ok {
		if t := a.Expr.Variables(); len(t) > 0 {
			return t[0].RootName()
		}
	}
	name, _, _ := strings.Cut(b.Labels[0], "_")
	return name
}

// walkExprs calls fn for every expression in body, with the iterator
// names of the dynamic blocks around it.
func walkExprs(body *hclsyntax.Body, iterators []string, fn func(hclsyntax.Expression, []string)) {
	for name, a := range body.Attributes {
		if name == "type" || name == "provider" || name == "providers" || name == "ignore_changes" {
			continue
		}
		fn(a.Expr, iterators)
	}
	for _, b := range body.Blocks {
		its := iterators
		if b.Type == "dynamic" && len(b.Labels) == 1 {
			it := b.Labels[0]
			if a, ok := b.Body.Attributes["iterator"]; ok {
				if t := a.Expr.Variables(); len(t) > 0 {
					it = t[0].RootName()
				} else if s, ok := literalExpr(a.Expr); ok {
					it = s
				}
			}
			its = append(slices.Clone(iterators), it)
		}
		walkExprs(b.Body, its, fn)
	}
}

// undeclared says what a reference names that the module does not
// declare ("" when it is fine).
func undeclared(t hcl.Traversal, declared map[string]*hcl.Range, iterators []string, self string) string {
	root := t.RootName()
	attr := func(i int) string {
		if len(t) <= i {
			return ""
		}
		if a, ok := t[i].(hcl.TraverseAttr); ok {
			return a.Name
		}
		return ""
	}
	switch root {
	case "var", "local", "module":
		key := root + "." + attr(1)
		if declared[key] == nil {
			kind := map[string]string{"var": "variable", "local": "local value", "module": "module"}[root]
			return fmt.Sprintf("reference to undeclared %s %q", kind, attr(1))
		}
	case "data":
		key := "data." + attr(1) + "." + attr(2)
		if declared[key] == nil {
			return fmt.Sprintf("reference to undeclared data source %q", attr(1)+"."+attr(2))
		}
	case "path", "terraform", "count", "each", "self":
	default:
		if slices.Contains(iterators, root) {
			return ""
		}
		key := root + "." + attr(1)
		if key == self {
			return fmt.Sprintf("resource %s refers to itself", self)
		}
		if declared[key] == nil {
			return fmt.Sprintf("reference to undeclared resource %q", key)
		}
	}
	return ""
}

// checkSource refuses a local module source that leaves the repository
// (fsys) or does not exist; remote sources are not fetched.
func (m *module) checkSource(fsys fs.FS, b *hclsyntax.Block) []Finding {
	r := b.DefRange()
	src, ok := literal(b.Body, "source")
	if !ok {
		return []Finding{finding("module_source", &r, fmt.Sprintf("module %q has no literal source", b.Labels[0]))}
	}
	switch {
	case strings.HasPrefix(src, "/"):
		return []Finding{finding("module_source", &r, fmt.Sprintf("module %q: source %s is an absolute path; use a path inside the repository", b.Labels[0], src))}
	case isLocal(src):
		p := path.Join(m.dir, src)
		if !fs.ValidPath(p) || strings.HasPrefix(p, "..") {
			return []Finding{finding("module_source", &r, fmt.Sprintf("module %q: source %s leaves the repository", b.Labels[0], src))}
		}
		if st, err := fs.Stat(fsys, p); err != nil || !st.IsDir() {
			return []Finding{finding("module_source", &r, fmt.Sprintf("module %q: source %s does not exist in the repository", b.Labels[0], src))}
		}
	}
	return nil
}

func isLocal(src string) bool { return strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") }

func literal(body *hclsyntax.Body, name string) (string, bool) {
	a, ok := body.Attributes[name]
	if !ok {
		return "", false
	}
	return literalExpr(a.Expr)
}

func literalExpr(e hclsyntax.Expression) (string, bool) {
	v, diags := e.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type().FriendlyName() != "string" {
		return "", false
	}
	return v.AsString(), true
}
