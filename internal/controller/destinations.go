package controller

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/appset"
	"github.com/mlcd-dev/mlcd/internal/clusters"
)

// probeInterval is how often a remote cluster is checked; an app on a
// cluster that stops answering says so within about this long.
const probeInterval = 5 * time.Second

// remote is a connection to one destination cluster besides the one mlcd
// runs in: its own client, cache (watches for drift) and applier, and a
// probe that marks it down while it does not answer.
type remote struct {
	cluster *clusters.Cluster
	cache   cache.Cache
	applier *apply.Applier
	disco   discovery.DiscoveryInterface
	cancel  context.CancelFunc
	// down is the probe's last error message; nil while it answers.
	down atomic.Pointer[string]

	watchMu sync.Mutex
	watched map[schema.GroupVersionKind]bool
}

// remotes are the connections, by server URL.
type remotes struct {
	mu   sync.Mutex
	base context.Context // the manager's run; nil until it starts
	byID map[string]*remote
}

// target is where one reconcile writes: the applier of the destination
// cluster and the destination with both its server and name resolved.
type target struct {
	applier *apply.Applier
	dest    v1alpha1.ApplicationDestination
	remote  *remote
	cluster *clusters.Cluster // nil: the cluster mlcd runs in
}

type targetKey struct{}

// applierOf is the applier of the app being reconciled with ctx (the
// in-cluster one unless the destination is another cluster).
func (r *ApplicationReconciler) applierOf(ctx context.Context) *apply.Applier {
	if t, ok := ctx.Value(targetKey{}).(*target); ok {
		return t.applier
	}
	return r.applier
}

// clientOf writes the app's own objects that the applier does not
// (canaries, hooks): the destination cluster's client.
func (r *ApplicationReconciler) clientOf(ctx context.Context) client.Client {
	if t, ok := ctx.Value(targetKey{}).(*target); ok && t.remote != nil {
		return t.applier.Client()
	}
	return r.client
}

// destinationOf is the app's destination, resolved by target.
func destinationOf(ctx context.Context, app *v1alpha1.Application) v1alpha1.ApplicationDestination {
	if t, ok := ctx.Value(targetKey{}).(*target); ok {
		return t.dest
	}
	return app.Spec.Destination
}

// startRemotes gives remote connections the manager's lifetime.
func (r *ApplicationReconciler) startRemotes(mgr manager.Manager) error {
	r.remotes.byID = map[string]*remote{}
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		r.remotes.mu.Lock()
		r.remotes.base = ctx
		r.remotes.mu.Unlock()
		<-ctx.Done()
		return nil
	}))
}

// target resolves the app's destination — the cluster mlcd runs in, or
// one named by a cluster Secret in the control-plane namespace — checks
// it against the project (nil: no check, for deletion) and the Secret's
// own scope, and returns ctx
// carrying it. A cluster that does not answer fails only its apps, with
// a message naming it (never its credentials).
func (r *ApplicationReconciler) target(ctx context.Context, app *v1alpha1.Application, proj *v1alpha1.AppProject) (context.Context, *stepError) {
	dest := app.Spec.Destination
	if clusters.IsInCluster(dest) {
		dest.Server, dest.Name = v1alpha1.InClusterServer, clusters.InClusterName
		if err := permitsDestination(proj, app.Spec.Destination, dest); err != nil {
			return ctx, failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
		}
		return context.WithValue(ctx, targetKey{}, &target{applier: r.applier, dest: dest}), nil
	}
	c, err := r.clusterFor(ctx, dest)
	if err != nil {
		return ctx, failTransient(v1alpha1.ConditionComparisonError, "read cluster Secrets: %s", err)
	}
	if c == nil {
		return ctx, failPermanent(v1alpha1.ConditionInvalidSpecError, "destination %s is not a known cluster: add a cluster Secret (label %s: %s, keys name, server, config) to namespace %s, or deploy to %s",
			cmp.Or(dest.Server, dest.Name), clusters.SecretTypeLabel, clusters.SecretType, r.Options.ControllerNamespace, v1alpha1.InClusterServer)
	}
	dest.Server, dest.Name = c.Server, c.Name
	if err := permitsDestination(proj, app.Spec.Destination, dest); err != nil {
		return ctx, failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
	}
	if proj != nil {
		if err := c.Permits(app.Spec.Project, dest.Namespace); err != nil {
			return ctx, failPermanent(v1alpha1.ConditionInvalidSpecError, "%s", err)
		}
	}
	rem, err := r.connect(ctx, c)
	if err != nil {
		return ctx, failTransient(v1alpha1.ConditionComparisonError, "cluster %s: %s", c, err)
	}
	if msg := rem.down.Load(); msg != nil {
		return ctx, failTransient(v1alpha1.ConditionComparisonError, "cluster %s is unreachable: %s; nothing is applied or pruned there until it answers", c, *msg)
	}
	return context.WithValue(ctx, targetKey{}, &target{applier: rem.applier, dest: dest, remote: rem, cluster: c}), nil
}

// clusterPermits checks every object against the destination cluster
// Secret's namespaces (not only the destination namespace).
func clusterPermits(ctx context.Context, objs []*unstructured.Unstructured) error {
	if t, ok := ctx.Value(targetKey{}).(*target); ok && t.cluster != nil {
		return t.cluster.PermitsObjects(objs)
	}
	return nil
}

// permitsDestination checks the project's destinations against the app's
// destination as written and as resolved (a project may list either the
// server or the name); proj nil (deleting an app) checks nothing.
func permitsDestination(proj *v1alpha1.AppProject, written, resolved v1alpha1.ApplicationDestination) error {
	if proj == nil {
		return nil
	}
	err := proj.PermitsDestination(resolved)
	if err != nil {
		return fmt.Errorf("%s", strings.Replace(err.Error(), "{"+cmp.Or(resolved.Server, resolved.Name)+" ", "{"+cmp.Or(written.Server, written.Name)+" ", 1))
	}
	return nil
}

// clusterSecrets are the cluster Secrets of the control-plane namespace.
func (r *ApplicationReconciler) clusterSecrets(ctx context.Context) (*corev1.SecretList, error) {
	var list corev1.SecretList
	err := r.client.List(ctx, &list, client.InNamespace(r.Options.ControllerNamespace), client.MatchingLabels{clusters.SecretTypeLabel: clusters.SecretType})
	return &list, err
}

// clusterFor is the cluster Secret matching dest, nil when none does.
func (r *ApplicationReconciler) clusterFor(ctx context.Context, dest v1alpha1.ApplicationDestination) (*clusters.Cluster, error) {
	list, err := r.clusterSecrets(ctx)
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		c, err := clusters.FromSecret(&list.Items[i])
		if err != nil {
			if dest.Name != "" && string(list.Items[i].Data["name"]) == dest.Name {
				return nil, err
			}
			continue
		}
		if c.Matches(dest) {
			return c, nil
		}
	}
	return nil, nil
}

// clusterList is what a clusters generator yields: the cluster mlcd runs
// in and every cluster Secret's cluster, with the Secret's labels and
// annotations (for the generator's selector).
func (r *ApplicationReconciler) clusterList(ctx context.Context) ([]appset.Cluster, error) {
	list, err := r.clusterSecrets(ctx)
	if err != nil {
		return nil, fmt.Errorf("list cluster Secrets: %w", err)
	}
	out := []appset.Cluster{appset.InCluster}
	for i := range list.Items {
		s := &list.Items[i]
		c, err := clusters.FromSecret(s)
		if err != nil {
			return nil, err
		}
		if clusters.IsInCluster(v1alpha1.ApplicationDestination{Server: c.Server}) {
			out[0] = appset.Cluster{Name: c.Name, Server: c.Server, Labels: s.Labels, Annotations: s.Annotations}
			continue
		}
		out = append(out, appset.Cluster{Name: c.Name, Server: c.Server, Labels: s.Labels, Annotations: s.Annotations})
	}
	return out, nil
}

// connect returns the connection to c, building it (or rebuilding it when
// the Secret changed) on first use.
func (r *ApplicationReconciler) connect(ctx context.Context, c *clusters.Cluster) (*remote, error) {
	rs := &r.remotes
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.base == nil {
		return nil, fmt.Errorf("the controller is not running")
	}
	id := strings.ToLower(strings.TrimSuffix(c.Server, "/"))
	if old := rs.byID[id]; old != nil {
		if old.cluster.Version == c.Version {
			return old, nil
		}
		old.cancel()
		delete(rs.byID, id)
	}
	cfg := c.RESTConfig()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("client configuration: %w", err)
	}
	disco, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	probeCtx, cancelProbe := context.WithTimeout(ctx, 10*time.Second)
	defer cancelProbe()
	if err := probe(probeCtx, disco); err != nil {
		return nil, fmt.Errorf("unreachable: %w", err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		return nil, err
	}
	direct, err := client.New(cfg, client.Options{HTTPClient: hc, Scheme: r.mgr.GetScheme(), Mapper: mapper})
	if err != nil {
		return nil, err
	}
	cc, reader, err := objectCache(cfg, cache.Options{HTTPClient: hc, Scheme: r.mgr.GetScheme(), Mapper: mapper}, direct, r.Options.Shard, r.Options.Shards)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(rs.base)
	rem := &remote{cluster: c, cache: cc, applier: apply.New(direct, reader), disco: disco, cancel: cancel, watched: map[schema.GroupVersionKind]bool{}}
	go func() {
		if err := cc.Start(runCtx); err != nil && runCtx.Err() == nil {
			log.FromContext(runCtx).Error(err, "cluster cache stopped", "cluster", c.String())
		}
	}()
	go r.probeLoop(runCtx, rem)
	rs.byID[id] = rem
	log.FromContext(ctx).Info("connected to cluster", "cluster", c.String())
	return rem, nil
}

// probe asks the cluster for its version.
func probe(ctx context.Context, disco discovery.DiscoveryInterface) error {
	res := disco.RESTClient().Get().AbsPath("/version").Do(ctx)
	var code int
	res.StatusCode(&code)
	if err := res.Error(); err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("answered %d", code)
	}
	return nil
}

// probeLoop checks the cluster every probeInterval; when it goes down or
// comes back, every app deployed there is reconciled at once.
func (r *ApplicationReconciler) probeLoop(ctx context.Context, rem *remote) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, probeInterval)
		err := probe(pctx, rem.disco)
		cancel()
		was := rem.down.Load() != nil
		if err != nil {
			msg := err.Error()
			rem.down.Store(&msg)
		} else {
			rem.down.Store(nil)
		}
		if was != (err != nil) {
			log.FromContext(ctx).Info("cluster reachability changed", "cluster", rem.cluster.String(), "reachable", err == nil)
			r.wakeApps(ctx, rem.cluster)
		}
	}
}

// wakeApps reconciles every app whose destination is c.
func (r *ApplicationReconciler) wakeApps(ctx context.Context, c *clusters.Cluster) {
	var list v1alpha1.ApplicationList
	if err := r.client.List(ctx, &list); err != nil {
		return
	}
	for i := range list.Items {
		a := &list.Items[i]
		if !c.Matches(a.Spec.Destination) {
			continue
		}
		r.requeueAfter(types.NamespacedName{Namespace: a.Namespace, Name: a.Name}, 0)
	}
}

// watchRemote watches gvk on a remote cluster: a change to an object an
// app deployed there reconciles the app (self-heal, health).
func (r *ApplicationReconciler) watchRemote(rem *remote, gvk schema.GroupVersionKind) error {
	rem.watchMu.Lock()
	defer rem.watchMu.Unlock()
	if rem.watched[gvk] {
		return nil
	}
	if err := r.ctrl.Watch(kindSource(rem.cache, gvk)); err != nil {
		return err
	}
	rem.watched[gvk] = true
	return nil
}
