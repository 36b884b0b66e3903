package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/controller"
	"github.com/mlcd-dev/mlcd/internal/localcluster/clustertest"
	"github.com/mlcd-dev/mlcd/internal/server"
	"github.com/mlcd-dev/mlcd/internal/source/gittest"
)

// A tenant who may write its Application (status included: Applications
// have no status subresource) names another namespace's Secret and
// Deployment in status.resources. Neither the diff nor the lineage its
// project-scoped token can call reads them back.
func TestTenantInventoryReadsNothingBeyondItsApp(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.createProject("team-a")
	e.createApp("team-app", "team-a", repoWith(t, "team-cm").URL(), false)
	victim := e.ns + "-victim"
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: victim}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-creds", Namespace: victim}, StringData: map[string]string{"password": "victim-password"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "victim-dep", Namespace: victim, Annotations: map[string]string{v1alpha1.AnnotationModelVersion: "victim-version"}},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "v"}}, Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "v"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "victim:1"}}}}}},
	} {
		if err := e.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = e.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: victim}}) })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		app := &v1alpha1.Application{}
		_ = e.c.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: "team-app"}, app)
		if app.Status.Sync.Revision != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("team-app was never compared")
		}
	}
	poison := []v1alpha1.ResourceStatus{
		{Version: "v1", Kind: "Secret", Namespace: victim, Name: "db-creds"},
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: victim, Name: "victim-dep", Health: &v1alpha1.HealthStatus{Status: "Healthy"}},
	}
	// The controller may rewrite the inventory at any moment: the calls
	// count only while the poisoned inventory is what the app holds.
	for attempt := 0; ; attempt++ {
		app := &v1alpha1.Application{}
		if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: "team-app"}, app); err != nil {
			t.Fatal(err)
		}
		app.Status.Resources = append(app.Status.Resources, poison...)
		if err := e.c.Update(ctx, app); err != nil {
			continue
		}
		time.Sleep(300 * time.Millisecond) // the server reads a cache
		_, diff := e.call("GET", "/api/v1/applications/team-app/diff", teamToken, nil)
		_, lineage := e.call("GET", "/api/v1/applications/team-app/lineage", teamToken, nil)
		after := &v1alpha1.Application{}
		_ = e.c.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: "team-app"}, after)
		held := false
		for _, r := range after.Status.Resources {
			held = held || r.Name == "victim-dep"
		}
		if !held {
			if attempt > 10 {
				t.Fatal("the poisoned inventory never held long enough to be read")
			}
			continue
		}
		for name, body := range map[string]string{"diff": diff, "lineage": lineage} {
			for _, leak := range []string{"db-creds", "victim-dep", "victim-version", victim} {
				if strings.Contains(body, leak) {
					t.Errorf("%s answered %q for a tenant's forged inventory: %s", name, leak, body[:min(len(body), 400)])
				}
			}
		}
		var l struct{ Workloads []json.RawMessage }
		if err := json.Unmarshal([]byte(lineage), &l); err != nil || len(l.Workloads) != 0 {
			t.Fatalf("lineage of an app with no Deployment of its own: %v %s", err, lineage)
		}
		return
	}
}

// A token holds at most MaxStreamsPerToken live streams; another token is
// not affected, and a closed stream frees its slot.
func TestStreamsPerTokenBounded(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(token string) (int, func()) {
		sctx, scancel := context.WithCancel(ctx)
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, e.url+"/api/v1/stream/applications", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, func() { scancel(); resp.Body.Close() }
	}
	var closers []func()
	for range server.MaxStreamsPerToken {
		st, c := open(readonlyToken)
		closers = append(closers, c)
		if st != http.StatusOK {
			t.Fatalf("stream: %d", st)
		}
	}
	if st, c := open(readonlyToken); st != http.StatusTooManyRequests {
		c()
		t.Fatalf("stream %d of one token: %d", server.MaxStreamsPerToken+1, st)
	}
	if st, c := open(adminToken); st != http.StatusOK {
		t.Errorf("another token's stream: %d", st)
	} else {
		c()
	}
	closers[0]()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, c := open(readonlyToken)
		c()
		if st == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed stream's slot was not freed")
		}
	}
	for _, c := range closers[1:] {
		c()
	}
}

// Under --insecure-no-auth a web page the user has open could POST to the
// API cross-site: a text/plain (or form) POST is refused and does nothing;
// a JSON one (which needs a preflight the API never answers) works.
func TestInsecureNoAuthRefusesCrossSitePosts(t *testing.T) {
	e := start(t)
	e.createApp("plain", "default", repoWith(t, "plain-cm").URL(), false)
	srv, err := server.New(server.Options{Client: e.c, Namespace: e.ns, InsecureNoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	post := func(ct string) int {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/api/v1/applications/plain/sync", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		if st := post(ct); st != http.StatusUnsupportedMediaType {
			t.Errorf("%s POST: %d", ct, st)
		}
	}
	a := &v1alpha1.Application{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: "plain"}, a); err != nil {
		t.Fatal(err)
	}
	if a.Operation != nil {
		t.Fatalf("a refused POST started a sync: %+v", a.Operation)
	}
	if st := post("application/json"); st != http.StatusOK {
		t.Errorf("JSON POST: %d", st)
	}
}

// A tenant writes its app's mlcd.io/model annotations to name another
// team's model: POST …/rollback refuses it (the model is mapped to another
// project) and pushes nothing. No controller runs here, so the forged
// annotations stay as written.
func TestRollbackRefusesAnotherProjectsModel(t *testing.T) {
	ctx := context.Background()
	env := clustertest.Get(t)
	ns := env.Namespace(t)
	c, err := client.New(env.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{
		"metadata: {name: team-a}\nspec: {sourceRepos: ['*'], destinations: [{server: '*', namespace: '*'}]}\n",
		"metadata: {name: team-b, annotations: {mlcd.io/models: fraud-detection}}\nspec: {sourceRepos: ['*'], destinations: [{server: '*', namespace: '*'}]}\n",
	} {
		p := &v1alpha1.AppProject{}
		if err := yaml.Unmarshal([]byte(doc), p); err != nil {
			t.Fatal(err)
		}
		p.Namespace = ns
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	repo := repoWith(t, "a-cm")
	gittest.Git(t, repo.Dir, "config", "receive.denyCurrentBranch", "updateInstead")
	app := &v1alpha1.Application{}
	yaml.Unmarshal([]byte(fmt.Sprintf(dirApp, "team-a-app", ns, "team-a", repo.URL(), ns, false)), app)
	app.Annotations = map[string]string{v1alpha1.AppAnnotationModel: "fraud-detection", v1alpha1.AppAnnotationEnvironment: "production"}
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Client: c, Namespace: ns, InsecureNoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	head := gittest.Git(t, repo.Dir, "rev-parse", "main")
	resp, err := http.Post(hs.URL+"/api/v1/applications/team-a-app/rollback", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "mapped to project(s) team-b") {
		t.Errorf("rollback naming another project's model: %d %s", resp.StatusCode, body)
	}
	if now := gittest.Git(t, repo.Dir, "rev-parse", "main"); now != head {
		t.Error("a commit was pushed")
	}
}
