package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
	"github.com/mlcd-dev/mlcd/internal/apply"
	"github.com/mlcd-dev/mlcd/internal/manifest"
)

// verification remembers the last comparison that found an app in sync:
// the revision, the app spec and a fingerprint of each live object. While
// all three hold, a reconcile (a resync, a status-only change of a managed
// object) needs no dry run. Spec edits bump generation, and labels and
// annotations are hashed in, so drift always changes the fingerprint. It is
// memory only: a restart compares afresh.
type verification struct {
	sha, spec string
	fp        map[string]string
}

func hashOf(v any) string {
	data, _ := json.Marshal(v)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// fingerprints fingerprints each live object: generation where the API server keeps one, else resourceVersion,
// plus the live values of the labels and annotations the desired object
// sets (keys others add, such as deployment.kubernetes.io/revision, are not
// mlcd's to compare). Missing objects have an empty fingerprint.
func fingerprints(objs []*unstructured.Unstructured, live liveSet) map[string]string {
	fp := make(map[string]string, len(objs))
	for _, o := range objs {
		fp[manifest.Key(o)] = fingerprintOf(live.of(o), o)
	}
	return fp
}

// fingerprintOf is one live object's fingerprint against its desired
// object; "" when it does not exist.
func fingerprintOf(live, desired *unstructured.Unstructured) string {
	if live == nil {
		return ""
	}
	v := live.GetResourceVersion()
	if g := live.GetGeneration(); g > 0 {
		v = strconv.FormatInt(g, 10)
	}
	return v + "/" + hashOf([2]map[string]string{pick(live.GetLabels(), desired.GetLabels()), pick(live.GetAnnotations(), desired.GetAnnotations())})
}

// createdFingerprint is the fingerprint of objects that a sync has just
// created, from the API server's replies: the next reconcile then needs no
// dry run once the cache shows the same objects. It reports false unless
// every object was created by this sync.
func createdFingerprint(objs []*unstructured.Unstructured, results []apply.Result) (map[string]string, bool) {
	live := map[string]*unstructured.Unstructured{}
	for _, r := range results {
		if r.Live != nil && r.Object != nil {
			live[manifest.Key(r.Object)] = r.Live
		}
	}
	fp := make(map[string]string, len(objs))
	for _, o := range objs {
		l := live[manifest.Key(o)]
		if l == nil {
			return nil, false
		}
		fp[manifest.Key(o)] = fingerprintOf(l, o)
	}
	return fp, true
}

func (r *ApplicationReconciler) verifiedAs(app types.NamespacedName, sha, spec string, fp map[string]string) bool {
	r.verifyMu.Lock()
	defer r.verifyMu.Unlock()
	v, ok := r.verified[app]
	if !ok || v.sha != sha || v.spec != spec || len(v.fp) != len(fp) {
		return false
	}
	for k, f := range fp {
		if f == "" || v.fp[k] != f {
			return false
		}
	}
	return true
}

func (r *ApplicationReconciler) remember(app types.NamespacedName, sha, spec string, fp map[string]string) {
	r.verifyMu.Lock()
	defer r.verifyMu.Unlock()
	r.verified[app] = verification{sha: sha, spec: spec, fp: maps.Clone(fp)}
}

func (r *ApplicationReconciler) forget(app types.NamespacedName) {
	r.verifyMu.Lock()
	defer r.verifyMu.Unlock()
	delete(r.verified, app)
}

// pick returns live's values for the keys of desired ("" when absent).
func pick(live, desired map[string]string) map[string]string {
	out := make(map[string]string, len(desired))
	for k := range desired {
		out[k] = live[k]
	}
	return out
}

// stale reports whether app, as the cache returned it, is older than this
// controller's last status write of it; once the cache moves past that
// version, or after a few seconds whatever happens, it is forgotten.
func (r *ApplicationReconciler) stale(app *v1alpha1.Application) bool {
	key := types.NamespacedName{Namespace: app.Namespace, Name: app.Name}
	r.verifyMu.Lock()
	defer r.verifyMu.Unlock()
	w, ok := r.superseded[key]
	if !ok {
		return false
	}
	if slices.Contains(w.versions, app.ResourceVersion) && time.Since(w.at) < 5*time.Second {
		return true
	}
	delete(r.superseded, key)
	return false
}

// wrote records that this reconcile's writes replaced the resourceVersions
// old of app (what it read, its own intermediate writes) with now; a
// write that changed nothing (same resourceVersion) supersedes nothing.
func (r *ApplicationReconciler) wrote(key types.NamespacedName, now string, old ...string) {
	r.verifyMu.Lock()
	defer r.verifyMu.Unlock()
	var versions []string
	for _, v := range old {
		if v != now && !slices.Contains(versions, v) {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		delete(r.superseded, key)
		return
	}
	r.superseded[key] = superseded{versions: versions, at: time.Now()}
}

// superseded are resourceVersions of an app this controller wrote over.
type superseded struct {
	versions []string
	at       time.Time
}
