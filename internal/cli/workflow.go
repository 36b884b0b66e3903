package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/go-git/go-git/v5"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/gate"
	"github.com/mlcd-dev/mlcd/internal/prdiff"
	"github.com/mlcd-dev/mlcd/internal/promote"
	"github.com/mlcd-dev/mlcd/internal/registry"
)

func newModelCheckCmd(reg *registryFlag) *cobra.Command {
	var base, head, dir, junit, keysFile string
	var allowPolicyChange bool
	var kubeconfig, namespace, manifests string
	cmd := &cobra.Command{
		Use:   "check --base REV --head REV",
		Short: "CI check: every model version the diff changes exists, passes its gates and ran in staging",
		Long: `check finds every model version that changes between --base and --head (in
values files named by a ModelPolicy, or in Helm parameters of the Applications
that deploy them) and checks each against the registry: model exists in
registry (READY), passed offline tests (the policy's metric gates), and, for
environments that require another, deployment successful there (its registry
alias points at the version). For an Application whose AppProject (in the
repository at --base) lists signatureKeys, it also checks that --head is signed
by one of them (signed approval; see mlcd model approve). Policies and projects
are read from --base: a change that adds, edits or deletes an mlcd.yaml or an
AppProject fails the "policy changed" check unless --allow-policy-change. It needs registry access only,
never cluster credentials. Exit status 1 names each failed check.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
			if err != nil {
				return fmt.Errorf("open repository %s: %w", dir, err)
			}
			// A change to a ModelPolicy or an AppProject needs its own
			// review: the gates come from --base, so the change under
			// review cannot weaken them.
			policyChanges, err := promote.PolicyChanges(repo, base, head)
			if err != nil {
				return err
			}
			cluster, err := readClusterPolicies(cmd.Context(), kubeconfig, namespace)
			if err != nil {
				return err
			}
			changes, err := promote.ChangesWith(repo, base, head, promote.ChangeOptions{HeadPolicies: allowPolicyChange, Cluster: cluster.policies})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var failed []string
			// A change to the infrastructure is checked too (mlcd infra check).
			if touched, err := promote.Touches(repo, base, head, "infrastructure"); err != nil {
				return err
			} else if touched {
				rep, err := infraCheck(dir, DefaultInfraDir, base, head)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, "infrastructure changed:")
				rep.WriteTable(out)
				fmt.Fprintln(out)
				for _, f := range rep.Findings {
					failed = append(failed, "infra: "+f.String())
				}
			}
			// What the change does to the rendered manifests (mlcd diff),
			// so the report shows the gates and the manifest change
			// together; an app the head cannot render fails the check.
			if manifests != "" {
				if _, err := os.Stat(filepath.Join(dir, manifests)); err == nil {
					res, err := prdiff.Run(cmd.Context(), prdiff.Options{Repo: dir, Base: base, Head: head, Path: manifests})
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "rendered manifests (%s):\n", manifests)
					writeText(out, res)
					fmt.Fprintln(out)
					for _, a := range res.Apps {
						if a.Status == prdiff.Failed {
							failed = append(failed, "render "+a.App+": "+a.Error)
						}
					}
				}
			}
			for _, pc := range policyChanges {
				if allowPolicyChange {
					fmt.Fprintf(out, "policy changed: %s (allowed by --allow-policy-change)\n", pc)
					continue
				}
				fmt.Fprintf(out, "policy changed: %s: FAILED (review it on its own; --allow-policy-change after that review)\n", pc)
				failed = append(failed, "policy changed: "+pc)
			}
			if len(changes) == 0 {
				if len(failed) > 0 {
					return fmt.Errorf("%d check(s) failed: %s", len(failed), strings.Join(failed, "; "))
				}
				fmt.Fprintf(out, "no model version changes between %s and %s\n", base, head)
				return nil
			}
			c, err := reg.client()
			if err != nil {
				return err
			}
			results, err := promote.Check(cmd.Context(), c, changes, cluster.ranHealthy)
			if err != nil {
				return err
			}
			var keys map[string]string
			if keysFile != "" {
				if keys, err = promote.LoadKeys(keysFile); err != nil {
					return err
				}
			}
			projectsAt := base
			if allowPolicyChange {
				projectsAt = head
			}
			if err := promote.CheckSignaturesWith(repo, head, projectsAt, cluster.projects, results, keys); err != nil {
				return err
			}
			promote.WriteTable(out, results)
			if os.Getenv("GITHUB_ACTIONS") == "true" {
				promote.WriteGitHubAnnotations(out, results)
			}
			if junit != "" {
				f, err := os.Create(junit)
				if err != nil {
					return err
				}
				if err := promote.WriteJUnit(f, results); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			for _, r := range results {
				for _, fc := range r.Failed() {
					failed = append(failed, fmt.Sprintf("%s %s (%s): %s", r.Model, r.Version, r.Env, fc.Name))
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d check(s) failed: %s", len(failed), strings.Join(failed, "; "))
			}
			fmt.Fprintln(out, "all checks passed")
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "base", "origin/main", "revision the change is based on")
	cmd.Flags().StringVar(&head, "head", "HEAD", "revision under review")
	cmd.Flags().StringVar(&dir, "repo", ".", "path of the deployment repository checkout")
	cmd.Flags().StringVar(&junit, "junit", "", "write a JUnit XML report to this file")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "also read the cluster's ModelPolicies, AppProjects and the Applications' record of versions that ran healthy (rollback exemption) from this cluster")
	cmd.Flags().StringVar(&namespace, "namespace", "argocd", "the control-plane namespace to read them from (with --kubeconfig)")
	cmd.Flags().BoolVar(&allowPolicyChange, "allow-policy-change", false, "accept changes to ModelPolicies (mlcd.yaml) and AppProjects in the diff and check against head's policies (after the separate review such a change needs)")
	cmd.Flags().StringVar(&manifests, "manifests", "argocd", "the directory of Application manifests whose rendered change (as mlcd diff) the report includes; skipped when absent, \"\" to leave out")
	cmd.Flags().StringVar(&keysFile, "signature-keys", "", "public keys (argocd-gpg-keys-cm manifest or a name: key map) for projects that require signed commits")
	return cmd
}

func newModelPromoteCmd() *cobra.Command {
	var o promote.Options
	cmd := &cobra.Command{
		Use:   "promote MODEL --version V --env ENV",
		Short: "Bump a model's version for an environment on a new promotion branch",
		Long: `promote edits the version key of MODEL's environment (the values file named in
models/<model>/mlcd.yaml, or the Application's Helm parameter when it overrides
the values file), keeping comments, commits it on promote/<model>-<version>-<env>
with a message naming model, version, environment and who, and pushes the
branch (or prints the push command with --no-push).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Model = args[0]
			if o.Version == "" || o.Env == "" {
				return fmt.Errorf("--version and --env are required")
			}
			res, err := promote.Promote(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %s -> %s in %s\n", o.Model, res.From, o.Version, res.File)
			fmt.Fprintf(out, "committed %s on branch %s\n", res.Commit[:7], res.Branch)
			if res.Pushed {
				fmt.Fprintf(out, "pushed %s\n", res.Branch)
			} else {
				fmt.Fprintf(out, "push it with: %s\n", res.PushCommand)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Version, "version", "", "model version as written in Git (e.g. v2.3.2)")
	cmd.Flags().StringVar(&o.Env, "env", "", "environment of the ModelPolicy (e.g. production)")
	addPushFlags(cmd, &o.Push)
	return cmd
}

func newRollbackCmd(use, short string, model bool) *cobra.Command {
	var o promote.RollbackOptions
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if model {
				o.Model = args[0]
				if o.Env == "" {
					return fmt.Errorf("--env is required")
				}
			} else {
				o.App = args[0]
			}
			res, err := promote.Rollback(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "reverted %s (%s) with %s on %s\n", res.Reverted[:7], res.Subject, res.Commit[:7], res.Branch)
			if res.Pushed {
				fmt.Fprintln(out, "pushed; the controller syncs the previous version")
			} else {
				fmt.Fprintf(out, "push it with: %s\n", res.PushCommand)
			}
			return nil
		},
	}
	if model {
		cmd.Flags().StringVar(&o.Env, "env", "", "environment to roll back (e.g. production)")
	}
	addPushFlags(cmd, &o.Push)
	return cmd
}

func newModelHistoryCmd(reg *registryFlag) *cobra.Command {
	return &cobra.Command{
		Use:   "history MODEL",
		Short: "Which version ran where, since when, from which commit (from the registry's write-back tags)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := reg.client()
			if err != nil {
				return err
			}
			vs, err := c.AllModelVersions(cmd.Context(), registry.SearchOptions{Filter: fmt.Sprintf("name = '%s'", strings.ReplaceAll(args[0], "'", ""))})
			if err != nil {
				return err
			}
			if len(vs) == 0 {
				return fmt.Errorf("model %s has no versions", args[0])
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tTAG\tRUNS IN (ALIASES)\tLAST DEPLOYED\tBY APP\tGIT COMMIT")
			for _, v := range vs {
				tag, _ := v.Tag(registry.VersionTag)
				at, _ := v.Tag("mlcd.deployed_at")
				app, _ := v.Tag("mlcd.app")
				sha, _ := v.Tag("mlcd.git_sha")
				if len(sha) > 12 {
					sha = sha[:12]
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Version, orDash(tag), orDash(strings.Join(v.Aliases, ",")), orDash(at), orDash(app), orDash(sha))
			}
			return w.Flush()
		},
	}
}

func newModelApproveCmd() *cobra.Command {
	var o promote.ApproveOptions
	cmd := &cobra.Command{
		Use:   "approve --signing-key FILE",
		Short: "Approve the current branch with a signed, empty commit (Approved-by: trailer)",
		Long: `approve adds an empty commit on top of the current branch, signed with an
OpenPGP or SSH private key, carrying "Approves: <sha>" and "Approved-by:" trailers,
and pushes it. Projects with signatureKeys sync only revisions signed by one of
their keys, so this is how a tech lead approves a promotion without editing files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.KeyFile == "" {
				return fmt.Errorf("--signing-key is required")
			}
			res, err := promote.Approve(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "approved %s with %s on %s, signed by %s\n", res.Approves[:7], res.Commit[:7], res.Branch, res.Signer)
			if !res.Pushed {
				fmt.Fprintf(out, "push it with: %s\n", res.PushCommand)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.KeyFile, "signing-key", "", "OpenPGP (armored) or OpenSSH private key file")
	cmd.Flags().StringVar(&o.Note, "note", "", "text added to the approval commit")
	addPushFlags(cmd, &o.Push)
	return cmd
}

// addPushFlags adds --repo, --no-push and --remote, the flags of every
// workflow that commits to the deployment repository.
func addPushFlags(cmd *cobra.Command, p *promote.Push) {
	cmd.Flags().StringVar(&p.Dir, "repo", ".", "path of the deployment repository checkout")
	cmd.Flags().BoolVar(&p.NoPush, "no-push", false, "commit locally and print the push command")
	cmd.Flags().StringVar(&p.Remote, "remote", "origin", "remote to push to")
}

// clusterPolicies is what `check --kubeconfig` reads from the cluster.
type clusterPolicies struct {
	policies   []v1alpha1.ModelPolicy
	projects   []v1alpha1.AppProject
	ranHealthy gate.RanHealthy
}

// readClusterPolicies reads the control-plane namespace's ModelPolicies,
// AppProjects and the Applications' healthy-versions record; nothing
// without a kubeconfig (CI without cluster access exempts nothing).
func readClusterPolicies(ctx context.Context, kubeconfig, namespace string) (clusterPolicies, error) {
	var out clusterPolicies
	if kubeconfig == "" {
		return out, nil
	}
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return out, err
	}
	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		return out, err
	}
	var mps v1alpha1.ModelPolicyList
	if err := c.List(ctx, &mps, client.InNamespace(namespace)); err != nil && !meta.IsNoMatchError(err) {
		return out, fmt.Errorf("list ModelPolicies in %s: %w", namespace, err)
	}
	var projs v1alpha1.AppProjectList
	if err := c.List(ctx, &projs, client.InNamespace(namespace)); err != nil && !meta.IsNoMatchError(err) {
		return out, fmt.Errorf("list AppProjects in %s: %w", namespace, err)
	}
	var apps v1alpha1.ApplicationList
	if err := c.List(ctx, &apps); err != nil && !meta.IsNoMatchError(err) {
		return out, fmt.Errorf("list Applications: %w", err)
	}
	out.policies, out.projects = mps.Items, projs.Items
	// The record lives in the control-plane namespace (the apps'
	// annotations are copies their writers could forge).
	var record corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: v1alpha1.HealthyVersionsConfigMap}, &record); err != nil && !apierrors.IsNotFound(err) {
		return out, fmt.Errorf("read %s in %s: %w", v1alpha1.HealthyVersionsConfigMap, namespace, err)
	}
	ran := map[string]bool{}
	for _, a := range apps.Items {
		model, env := a.Annotations[v1alpha1.AppAnnotationModel], a.Annotations[v1alpha1.AppAnnotationEnvironment]
		for _, v := range v1alpha1.ParseHealthyVersions(record.Data[v1alpha1.HealthyVersionsKey(a.Namespace, a.Name)]) {
			if model != "" {
				ran[model+"\x00"+env+"\x00"+v] = true
			}
		}
	}
	out.ranHealthy = func(model, env, version string) bool { return ran[model+"\x00"+env+"\x00"+version] }
	return out, nil
}
