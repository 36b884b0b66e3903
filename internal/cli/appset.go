package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/appset"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/server"
	"github.com/mlcd-dev/mlcd/internal/source"
)

func newAppSetCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{Use: "appset", Short: "Work with ApplicationSets"}
	f.add(cmd)
	cmd.AddCommand(newAppSetGenerateCmd(&f), newAppSetListCmd(&f), newAppSetGetCmd(&f))
	return cmd
}

func newAppSetListCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "ApplicationSets with their generated apps and conditions (through the API)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			sets, err := c.ListAppSets(cmd.Context())
			if err != nil {
				return err
			}
			if ok, err := f.print(cmd.OutOrStdout(), sets); ok || err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tAPPS\tSTATUS")
			for _, s := range sets {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", s.Name, len(s.Applications), appSetStatus(&s.ApplicationSet))
			}
			return tw.Flush()
		},
	}
}

func newAppSetGetCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "One ApplicationSet: its conditions and the apps it generated",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			s, err := c.GetAppSet(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if ok, err := f.print(cmd.OutOrStdout(), s); ok || err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Name:    %s\nStatus:  %s\n", s.Name, appSetStatus(&s.ApplicationSet))
			for _, cond := range s.Status.Conditions {
				fmt.Fprintf(out, "  %s=%s %s: %s\n", cond.Type, cond.Status, cond.Reason, cond.Message)
			}
			fmt.Fprintf(out, "Applications (%d):\n", len(s.Applications))
			for _, a := range s.Applications {
				fmt.Fprintf(out, "  %s\n", a)
			}
			return nil
		},
	}
}

// appSetStatus is the set's error condition, or "ok".
func appSetStatus(s *v1alpha1.ApplicationSet) string {
	for _, c := range s.Status.Conditions {
		if c.Type == v1alpha1.AppSetConditionErrorOccurred && c.Status == "True" {
			return "error: " + c.Message
		}
	}
	return "ok"
}

// localRepos serves every repository from one local checkout.
type localRepos struct{ dir string }

func (l localRepos) Checkout(string, string) (string, error) { return l.dir, nil }

// fetchedRepos fetches repositories into a cache directory.
type fetchedRepos struct {
	ctx   context.Context
	cache *source.Cache
}

func (f fetchedRepos) Checkout(url, revision string) (string, error) {
	sha, err := f.cache.Resolve(f.ctx, url, revision, source.Credentials{}, true)
	if err != nil {
		return "", err
	}
	return f.cache.Checkout(f.ctx, url, sha)
}

func newAppSetGenerateCmd(f *apiFlags) *cobra.Command {
	var repoDir, output string
	var diff bool
	cmd := &cobra.Command{
		Use:   "generate FILE",
		Short: "Print the Applications an ApplicationSet would produce, without a cluster",
		Long: `generate runs the set's generators and template exactly as the controller
does and prints the Applications (YAML, or their names with -o name). Git
generators read --repo-dir when given (a checkout of the repository the set
names), else fetch the repository. --diff compares them with the live set
through the API: which apps would be created, changed (a diff of the spec)
or deleted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			objs, err := manifest.Parse(args[0], data)
			if err != nil {
				return err
			}
			var repos appset.Repos
			if repoDir != "" {
				abs, err := filepath.Abs(repoDir)
				if err != nil {
					return err
				}
				repos = localRepos{dir: abs}
			} else {
				cache, err := os.MkdirTemp("", "mlcd-appset-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(cache)
				repos = fetchedRepos{ctx: cmd.Context(), cache: source.NewCache(source.Options{Dir: cache})}
			}
			out := cmd.OutOrStdout()
			found := 0
			for _, o := range objs {
				if o.GetKind() != "ApplicationSet" {
					continue
				}
				found++
				raw, _ := o.MarshalJSON()
				set := &v1alpha1.ApplicationSet{}
				if err := yaml.UnmarshalStrict(raw, set); err != nil {
					return fmt.Errorf("ApplicationSet %s: %w", o.GetName(), err)
				}
				if set.Namespace == "" {
					set.Namespace = v1alpha1.DefaultControlPlaneNamespace
				}
				apps, _, err := appset.Apps(set, appset.Inputs{Repos: repos, Clusters: []appset.Cluster{appset.InCluster}})
				if err != nil {
					return fmt.Errorf("ApplicationSet %s: %w", set.Name, err)
				}
				if diff {
					if err := diffAppSet(cmd.Context(), f, out, set, apps); err != nil {
						return err
					}
					continue
				}
				for _, a := range apps {
					if output == "name" {
						fmt.Fprintln(out, a.Name)
						continue
					}
					data, err := yaml.Marshal(a)
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "---\n%s", data)
				}
			}
			if found == 0 {
				return fmt.Errorf("%s holds no ApplicationSet", args[0])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&repoDir, "repo-dir", "", "a local checkout to read git generators from (default: fetch the repository)")
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "yaml or name")
	cmd.Flags().BoolVar(&diff, "diff", false, "compare with the live set through the API (--server, --token)")
	return cmd
}

// diffAppSet prints what the controller would create, change and delete
// for set: the preview Argo CD users asked for.
func diffAppSet(ctx context.Context, f *apiFlags, out io.Writer, set *v1alpha1.ApplicationSet, apps []*v1alpha1.Application) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	live, err := c.GetAppSet(ctx, set.Name)
	var apiErr *server.Error
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		live = &server.AppSet{}
	} else if err != nil {
		return err
	}
	want := map[string]bool{}
	changes := 0
	for _, a := range apps {
		key := a.Namespace + "/" + a.Name
		want[key] = true
		cur, err := c.GetApp(ctx, key)
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			fmt.Fprintf(out, "+ %s: would be created\n", key)
			changes++
			continue
		}
		if err != nil {
			return err
		}
		before, _ := yaml.Marshal(cur.Spec)
		after, _ := yaml.Marshal(a.Spec)
		if string(before) == string(after) {
			fmt.Fprintf(out, "  %s: unchanged\n", key)
			continue
		}
		changes++
		d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(string(before)), B: difflib.SplitLines(string(after)), FromFile: key + " (live spec)", ToFile: key + " (generated)", Context: 2})
		fmt.Fprintf(out, "~ %s: spec would change\n%s", key, d)
	}
	for _, key := range live.Applications {
		if !want[key] {
			fmt.Fprintf(out, "- %s: would be deleted (with its resources, unless preserveResourcesOnDeletion)\n", key)
			changes++
		}
	}
	if changes == 0 {
		fmt.Fprintf(out, "ApplicationSet %s: no changes\n", set.Name)
	}
	return nil
}
