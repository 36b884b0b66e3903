// Command vulncheck runs govulncheck against a Go vulnerability database
// built offline from the golang.org/x/vulndb module (the machines that run
// CI reach the Go module proxy but not vuln.go.dev).
//
// It fails when the main module can call a vulnerable function of a
// module or of the standard library (the project builds with the toolchain
// the Makefile's GOTOOLCHAIN names; a finding there names the fixing Go
// release); controlplane/'s vulnerable imports are reported.
//
//	go run ./hack/vulncheck            # from the repository root
package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Pinned so a run is reproducible; bump both together.
const (
	vulndbModule = "golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018"
	vulnModule   = "golang.org/x/vuln@v1.9.0"
)

// accepted are findings with no fixed release, each with why it is
// acceptable; one that gains a fix fails the check again.
var accepted = map[string]string{
	// Both are in controlplane/ only (the embedded development cluster,
	// bound to 127.0.0.1); the main module does not require k8s.io/kubernetes.
	"GO-2025-3547": "CVE-2024-7598, a NetworkPolicy bypass during namespace deletion open in every k8s.io/kubernetes release; the embedded cluster enforces no NetworkPolicy",
	"GO-2025-3521": "CVE-2025-1767, the kubelet's deprecated gitRepo volume, open in every k8s.io/kubernetes release; the embedded cluster runs no kubelet",
}

func main() {
	keep := flag.String("db", "", "directory to build the database in (default: a temporary directory)")
	flag.Parse()
	if err := run(*keep, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "vulncheck:", err)
		os.Exit(1)
	}
}

func run(dbDir string, patterns []string) error {
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	tmp, err := os.MkdirTemp("", "mlcd-vulncheck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if dbDir == "" {
		dbDir = filepath.Join(tmp, "db")
	}

	step("downloading " + vulndbModule)
	out, err := exec.Command("go", "mod", "download", "-json", vulndbModule).Output()
	if err != nil {
		return fmt.Errorf("go mod download %s: %w", vulndbModule, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return fmt.Errorf("go mod download %s: %s", vulndbModule, cmp.Or(mod.Error, string(out)))
	}

	// gendb reads the reports from a Git repository (for timestamps); the
	// module zip has none, so commit a copy.
	step("building the database from " + filepath.Base(mod.Dir))
	repoDir := filepath.Join(tmp, "vulndb")
	if err := copyTree(mod.Dir, repoDir); err != nil {
		return err
	}
	if err := commitAll(repoDir); err != nil {
		return err
	}
	if err := goRun(os.Stderr, "golang.org/x/vulndb/cmd/gendb@"+strings.SplitN(vulndbModule, "@", 2)[1], "-repo", repoDir, "-out", dbDir); err != nil {
		return fmt.Errorf("gendb: %w", err)
	}

	// Both modules of the repository. The main one (what ships) at symbol
	// level: a vulnerable function it can call fails. controlplane/ (the
	// embedded development cluster, all of k8s.io/kubernetes, never in a
	// production path) at package level, reported without failing: its
	// call graph takes govulncheck past 24 GiB, and a package-level
	// finding does not say the code reaches the vulnerability.
	var called []finding
	for _, m := range []struct{ dir, scan string }{{".", "symbol"}, {"controlplane", "package"}} {
		step("govulncheck -C " + m.dir + " -scan " + m.scan + " " + strings.Join(patterns, " "))
		var stream bytes.Buffer
		args := append([]string{"-C", m.dir, "-scan", m.scan, "-db", "file://" + dbDir, "-format", "json"}, patterns...)
		if err := goRun(&stream, "golang.org/x/vuln/cmd/govulncheck@"+strings.SplitN(vulnModule, "@", 2)[1], args...); err != nil {
			return fmt.Errorf("govulncheck in %s: %w", m.dir, err)
		}
		found, err := findings(&stream, m.scan)
		if err != nil {
			return err
		}
		for i := range found {
			found[i].Dir = m.dir
		}
		called = append(called, found...)
	}
	var modules, stdlib []string
	for _, f := range called {
		switch reason, ok := accepted[f.OSV]; {
		case ok && f.Fixed == "":
			fmt.Printf("accepted (no fixed release): %s: %s\n", f, reason)
		case f.Dir != ".":
			fmt.Printf("reported (%s/, imported package; not failing): %s\n", f.Dir, f)
		case f.Module == "stdlib" || f.Module == "toolchain":
			stdlib = append(stdlib, f.String())
		default:
			modules = append(modules, f.String())
		}
	}
	for _, s := range stdlib {
		fmt.Printf("VULNERABLE (standard library of %s): %s\n", goVersion(), s)
	}
	for _, s := range modules {
		fmt.Printf("VULNERABLE: %s\n", s)
	}
	if n := len(modules) + len(stdlib); n > 0 {
		return fmt.Errorf("the main module calls %d vulnerable symbol(s): %d of modules, %d of the standard library", n, len(modules), len(stdlib))
	}
	fmt.Printf("vulncheck: the main module calls no vulnerable symbol of any module or of the standard library (%s; controlplane/'s imports reported above)\n", goVersion())
	return nil
}

// finding is one vulnerability the code reaches at symbol level.
type finding struct {
	OSV, Module, Version, Fixed, Symbol string
	Dir                                 string // the module's directory
}

func (f finding) String() string {
	return fmt.Sprintf("%s in %s@%s (fixed in %s), reached through %s", f.OSV, f.Module, f.Version, cmp.Or(f.Fixed, "no release"), f.Symbol)
}

// findings reads govulncheck's JSON stream and returns the findings at
// the scan's level — a function (called) for "symbol", a package
// (imported) for "package" — one per vulnerability.
func findings(r io.Reader, scan string) ([]finding, error) {
	dec := json.NewDecoder(r)
	seen := map[string]finding{}
	for {
		var msg struct {
			Finding *struct {
				OSV          string `json:"osv"`
				FixedVersion string `json:"fixed_version"`
				Trace        []struct {
					Module, Version, Package, Function, Receiver string
				} `json:"trace"`
			} `json:"finding"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading govulncheck output: %w", err)
		}
		f := msg.Finding
		if f == nil || len(f.Trace) == 0 || (scan == "symbol" && f.Trace[0].Function == "") || f.Trace[0].Package == "" {
			continue
		}
		t := f.Trace[0]
		sym := t.Package
		if t.Function != "" {
			sym = t.Package + "." + t.Function
		}
		if t.Receiver != "" {
			sym = t.Package + "." + strings.TrimPrefix(t.Receiver, "*") + "." + t.Function
		}
		if _, ok := seen[f.OSV]; !ok {
			seen[f.OSV] = finding{OSV: f.OSV, Module: t.Module, Version: t.Version, Fixed: f.FixedVersion, Symbol: sym}
		}
	}
	out := make([]finding, 0, len(seen))
	for _, f := range seen {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OSV < out[j].OSV })
	return out, nil
}

func goRun(stdout io.Writer, pkg string, args ...string) error {
	cmd := exec.Command("go", append([]string{"run", pkg}, args...)...)
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	// The tools are separate modules: build them outside this one.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok && strings.Contains(pkg, "govulncheck") && ee.ExitCode() == 3 {
		return nil // JSON mode reports findings in the stream; 3 is "vulnerabilities found"
	}
	return err
}

func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

func commitAll(dir string) error {
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		return err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	if err := wt.AddGlob("."); err != nil {
		return err
	}
	sig := &object.Signature{Name: "vulncheck", Email: "vulncheck@mlcd.invalid", When: time.Now()}
	_, err = wt.Commit("vulndb", &git.CommitOptions{Author: sig, Committer: sig})
	return err
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func step(s string) { fmt.Fprintln(os.Stderr, "==", s) }
