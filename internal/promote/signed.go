package promote

import (
	"fmt"
	"os"
	"strings"

	"github.com/mlcd-dev/mlcd/internal/modelpolicy"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/gate"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/source"
)

// CheckSigned is the check that a change to a project requiring signed
// commits carries a signature by one of its keys.
const CheckSigned = "signed approval"

// LoadKeys reads public keys from a file: a ConfigMap manifest (as
// argocd-gpg-keys-cm) or a plain YAML map of name → key.
func LoadKeys(file string) (map[string]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var cm struct {
		Kind string            `json:"kind"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(data, &cm); err == nil && cm.Kind == "ConfigMap" {
		return cm.Data, nil
	}
	var plain map[string]string
	if err := yaml.Unmarshal(data, &plain); err != nil {
		return nil, fmt.Errorf("%s: neither a ConfigMap nor a map of keys: %w", file, err)
	}
	return plain, nil
}

// CheckSignatures adds the signed-approval check to results whose
// Application's AppProject (found in the head tree) lists signatureKeys:
// the head commit must be signed by one of them. keys are the public keys
// by name (see LoadKeys); nil fails such changes with a clear message.
//
// Projects are read from projectsAt (the base of the change, so a change
// cannot drop the signatureKeys that gate it).
func CheckSignatures(repo *git.Repository, head, projectsAt string, results []CheckResult, keys map[string]string) error {
	return CheckSignaturesWith(repo, head, projectsAt, nil, results, keys)
}

// CheckSignaturesWith is CheckSignatures with the cluster's AppProjects,
// which win over the repository's of the same name (they are what the
// controller enforces).
func CheckSignaturesWith(repo *git.Repository, head, projectsAt string, cluster []v1alpha1.AppProject, results []CheckResult, keys map[string]string) error {
	tree, commit, err := TreeAt(repo, head)
	if err != nil {
		return err
	}
	ptree, _, err := TreeAt(repo, projectsAt)
	if err != nil {
		return err
	}
	projects, err := ptree.projects()
	if err != nil {
		return err
	}
	for i := range cluster {
		projects[cluster[i].Name] = &cluster[i]
	}
	for i := range results {
		r := &results[i]
		if r.App == "" {
			continue
		}
		proj := projects[r.appProject(tree)]
		if proj == nil || len(proj.Spec.SignatureKeys) == 0 {
			continue
		}
		r.Checks = append(r.Checks, signedCheck(commit, proj, keys))
	}
	return nil
}

func signedCheck(commit *object.Commit, proj *v1alpha1.AppProject, keys map[string]string) gate.Check {
	c := gate.Check{Name: CheckSigned}
	allowed := map[string]string{}
	for _, sk := range proj.Spec.SignatureKeys {
		if k, ok := source.LookupKey(keys, sk.KeyID); ok {
			allowed[sk.KeyID] = k
		}
	}
	if len(allowed) == 0 {
		c.Message = fmt.Sprintf("project %s requires signed commits; pass the public keys of its signatureKeys with --signature-keys", proj.Name)
		return c
	}
	id, err := source.VerifyCommit(commit, allowed)
	if err != nil {
		c.Message = err.Error()
		return c
	}
	c.OK, c.Message = true, fmt.Sprintf("commit %s signed by %s", commit.Hash.String()[:7], id)
	return c
}

// appProject returns the project of the Application manifest in d.App.
func (d Deployment) appProject(t *Tree) string {
	data, err := t.Read(d.App)
	if err != nil {
		return ""
	}
	apps, _ := t.applicationsIn(d.App, data)
	for _, a := range apps {
		if modelpolicy.Deploys(&a.app, d.Dir, d.Env) {
			return a.app.Spec.Project
		}
	}
	return ""
}

func (t *Tree) projects() (map[string]*v1alpha1.AppProject, error) {
	out := map[string]*v1alpha1.AppProject{}
	err := t.tree.Files().ForEach(func(f *object.File) error {
		if !strings.HasSuffix(f.Name, ".yaml") && !strings.HasSuffix(f.Name, ".yml") {
			return nil
		}
		content, err := f.Contents()
		if err != nil || !strings.Contains(content, "kind: AppProject") {
			return err
		}
		objs, err := manifest.Parse(f.Name, []byte(content))
		if err != nil {
			return nil
		}
		for _, o := range objs {
			if o.GetKind() != "AppProject" {
				continue
			}
			raw, _ := o.MarshalJSON()
			p := &v1alpha1.AppProject{}
			if yaml.Unmarshal(raw, p) == nil {
				out[p.Name] = p
			}
		}
		return nil
	})
	return out, err
}
