package controller

import (
	"context"
	"hash/fnv"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ShardAnnotation pins an Application (or ApplicationSet) to a shard.
const ShardAnnotation = "mlcd.io/shard"

// ShardOf is the shard (0 … shards-1) that reconciles the object
// namespace/name: rendezvous hashing, so adding a shard moves about 1/N
// of the apps and removing one moves only its own. A valid ShardAnnotation
// wins.
func ShardOf(namespace, name string, annotations map[string]string, shards int) int {
	if shards <= 1 {
		return 0
	}
	if s, err := strconv.Atoi(annotations[ShardAnnotation]); err == nil && s >= 0 && s < shards {
		return s
	}
	best, bestScore := 0, uint64(0)
	for i := range shards {
		h := fnv.New64a()
		h.Write([]byte(namespace + "/" + name + "#" + strconv.Itoa(i)))
		if score := mix(h.Sum64()); i == 0 || score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// mix is a 64-bit finalizer (splitmix64): FNV's low bits alone spread the
// short shard suffix poorly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// owns reports whether this controller's shard reconciles obj.
func (r *ApplicationReconciler) owns(obj metav1.Object) bool {
	return r.Options.Shards <= 1 || ShardOf(obj.GetNamespace(), obj.GetName(), obj.GetAnnotations(), r.Options.Shards) == r.Options.Shard
}

// A sharded controller labels every object it applies with its shard
// (ShardAnnotation's key, as a label) and reads and watches the apps'
// objects through a cache that selects that label: a shard caches its
// own apps' objects, not the fleet's. The rollout, GPU and health code's
// reads of objects mlcd does not label (Pods, ReplicaSets, templates) stay
// on the manager's cache.

// shardSelector selects the objects shard's apps deployed; nil unsharded.
func shardSelector(shard, shards int) labels.Selector {
	if shards <= 1 {
		return nil
	}
	return labels.SelectorFromSet(labels.Set{ShardAnnotation: strconv.Itoa(shard)})
}

// stampShard labels the objects with this controller's shard (sharded
// controllers only).
func (r *ApplicationReconciler) stampShard(objs []*unstructured.Unstructured) {
	if r.Options.Shards <= 1 {
		return
	}
	for _, o := range objs {
		setShardLabel(o, strconv.Itoa(r.Options.Shard))
	}
}

func setShardLabel(o *unstructured.Unstructured, shard string) {
	l := o.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[ShardAnnotation] = shard
	o.SetLabels(l)
}

// keepShard gives each desired object the shard label its live copy
// carries, for a diff computed without knowing the shard count (an API
// server's): the label is the controller's bookkeeping, not a change.
func keepShard(objs []*unstructured.Unstructured, live liveSet) {
	for _, o := range objs {
		l := live.of(o)
		if l == nil || o.GetLabels()[ShardAnnotation] != "" {
			continue
		}
		if s, ok := l.GetLabels()[ShardAnnotation]; ok {
			setShardLabel(o, s)
		}
	}
}

// shardReader reads through a shard's label-selected cache and asks the
// API server about what it does not show: an object of another shard's
// app (the two-apps-one-object rule must see it), one from before
// sharding or of an app that moved here carries no or another label.
type shardReader struct {
	cache  client.Reader
	direct client.Reader
}

func (s shardReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := s.cache.Get(ctx, key, obj, opts...)
	if apierrors.IsNotFound(err) {
		return s.direct.Get(ctx, key, obj, opts...)
	}
	return err
}

func (s shardReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return s.cache.List(ctx, list, opts...)
}

// objectCache is a new cache for a controller's apps' objects on the
// cluster at cfg, and the reader over it: of every object unsharded, of
// the objects labelled with the shard (read past through direct) sharded.
func objectCache(cfg *rest.Config, o cache.Options, direct client.Reader, shard, shards int) (cache.Cache, client.Reader, error) {
	sel := shardSelector(shard, shards)
	o.DefaultLabelSelector = sel
	c, err := cache.New(cfg, o)
	if err != nil {
		return nil, nil, err
	}
	if sel == nil {
		return c, c, nil
	}
	return c, shardReader{cache: c, direct: direct}, nil
}
