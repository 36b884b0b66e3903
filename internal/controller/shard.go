package controller

import (
	"hash/fnv"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
