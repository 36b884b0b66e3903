package desired

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/manifest"
	"github.com/mlcd-dev/mlcd/internal/render"
	"github.com/mlcd-dev/mlcd/internal/source"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// scopes is a Normalizer that knows Namespaces and ClusterRoles are
// cluster-scoped (the API server's answer in production).
type scopes struct{}

func (scopes) Normalize(objs []*unstructured.Unstructured, ns string) error {
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "ClusterRole":
			o.SetNamespace("")
		case "Widget":
			return errors.New("Widget w: unknown kind")
		default:
			if o.GetNamespace() == "" {
				o.SetNamespace(ns)
			}
		}
	}
	return nil
}

func engine(t *testing.T) *Engine {
	return &Engine{Sources: source.NewCache(source.Options{Dir: t.TempDir()}), Renderer: render.New(), Normalizer: scopes{}}
}

func cmDoc(name string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\n"
}

func TestBuild(t *testing.T) {
	repo := gittest.New(t)
	repo.Write(map[string]string{
		"app/cm.yaml":   cmDoc("a"),
		"app/ns.yaml":   "apiVersion: v1\nkind: Namespace\nmetadata: {name: extra}\n",
		"other/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: kube-system}\n",
		"bad/w.yaml":    "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
		"broken/x.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x\n",
	}).Commit("layout")
	e := engine(t)
	ctx := context.Background()
	src := v1alpha1.ApplicationSource{RepoURL: repo.URL(), TargetRevision: "main", Path: "app"}
	sha, err := e.Resolve(ctx, src, source.Credentials{}, true)
	if err != nil {
		t.Fatal(err)
	}
	dest := v1alpha1.ApplicationDestination{Server: v1alpha1.InClusterServer, Namespace: "ml"}
	open := v1alpha1.NewDefaultProject("argocd")

	st, err := e.Build(ctx, Input{Owner: "argocd/app", AppName: "app", Source: src, Destination: dest, Revision: sha, Project: open})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range st.Objects {
		if o.GetAnnotations()[manifest.AppAnnotation] != "argocd/app" || o.GetLabels()[manifest.InstanceLabel] != "app" {
			t.Errorf("%s %s not stamped: %v %v", o.GetKind(), o.GetName(), o.GetLabels(), o.GetAnnotations())
		}
		if o.GetKind() == "ConfigMap" && o.GetNamespace() != "ml" {
			t.Errorf("ConfigMap namespace %q, want the destination", o.GetNamespace())
		}
	}
	// The render cache is not changed by stamping.
	again, _ := e.Renderer.Render(render.Input{Root: st.Root, Revision: sha, Source: src, AppName: "app", Namespace: "ml"})
	for _, o := range again.Objects {
		if _, ok := o.GetAnnotations()[manifest.AppAnnotation]; ok {
			t.Fatal("Build stamped the cached render")
		}
	}

	// A project without cluster-scoped kinds refuses the Namespace, and
	// one whose destinations lack kube-system refuses the other object.
	narrow := &v1alpha1.AppProject{ObjectMeta: metav1.ObjectMeta{Name: "narrow"}, Spec: v1alpha1.AppProjectSpec{
		SourceRepos: []string{"*"}, Destinations: []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "ml"}},
	}}
	cases := []struct {
		path    string
		proj    *v1alpha1.AppProject
		reason  Reason
		contain string
	}{
		{"app", narrow, ReasonInvalidSpec, "Namespace extra: cluster-scoped resource Namespace is not permitted in project 'narrow'"},
		{"other", narrow, ReasonInvalidSpec, "ConfigMap b: application destination {https://kubernetes.default.svc kube-system} is not permitted"},
		{"bad", open, ReasonComparison, "unknown kind"},
		{"broken", open, ReasonComparison, "broken/x.yaml"},
	}
	for _, c := range cases {
		s := src
		s.Path = c.path
		_, err := e.Build(ctx, Input{Owner: "argocd/app", AppName: "app", Source: s, Destination: dest, Revision: sha, Project: c.proj})
		var de *Error
		if !errors.As(err, &de) || de.Reason != c.reason || !strings.Contains(err.Error(), c.contain) {
			t.Errorf("%s: %v, want %s containing %q", c.path, err, c.reason, c.contain)
		}
	}

	// A revision that does not exist is a comparison error that waits for
	// Git, not a transient one.
	_, err = e.Resolve(ctx, v1alpha1.ApplicationSource{RepoURL: repo.URL(), TargetRevision: "no-such-branch"}, source.Credentials{}, true)
	var de *Error
	if !errors.As(err, &de) || de.Transient || de.Reason != ReasonComparison {
		t.Errorf("missing revision: %v", err)
	}
}
