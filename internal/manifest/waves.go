package manifest

import (
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Sync phases and hook types, Argo CD's words.
const (
	PreSync  = "PreSync"
	Sync     = "Sync"
	PostSync = "PostSync"
	SyncFail = "SyncFail"
	Skip     = "Skip"
)

// Hook delete policies, Argo CD's words.
const (
	HookSucceeded      = "HookSucceeded"
	HookFailed         = "HookFailed"
	BeforeHookCreation = "BeforeHookCreation"
)

// Annotations of sync waves and hooks (Argo CD's, and Helm's it maps).
const (
	SyncWaveAnnotation         = "argocd.argoproj.io/sync-wave"
	HookAnnotation             = "argocd.argoproj.io/hook"
	HookDeletePolicyAnnotation = "argocd.argoproj.io/hook-delete-policy"
	HelmHookAnnotation         = "helm.sh/hook"
	HelmHookWeightAnnotation   = "helm.sh/hook-weight"
	HelmHookDeletePolicy       = "helm.sh/hook-delete-policy"
)

// HookTypes returns the object's hook types (nil: an ordinary resource).
// Argo CD's annotation wins over Helm's, which maps as Argo CD maps it:
// pre-install and pre-upgrade → PreSync, post-install and post-upgrade →
// PostSync; Helm test hooks and the delete/rollback hooks are skipped.
func HookTypes(o *unstructured.Unstructured) []string {
	ann := o.GetAnnotations()
	if v, ok := ann[HookAnnotation]; ok {
		var out []string
		for _, t := range strings.Split(v, ",") {
			switch t = strings.TrimSpace(t); t {
			case PreSync, Sync, PostSync, SyncFail, Skip:
				if !contains(out, t) {
					out = append(out, t)
				}
			}
		}
		return out
	}
	v, ok := ann[HelmHookAnnotation]
	if !ok {
		return nil
	}
	var out []string
	for _, t := range strings.Split(v, ",") {
		switch strings.TrimSpace(t) {
		case "pre-install", "pre-upgrade":
			if !contains(out, PreSync) {
				out = append(out, PreSync)
			}
		case "post-install", "post-upgrade":
			if !contains(out, PostSync) {
				out = append(out, PostSync)
			}
		}
	}
	if len(out) == 0 {
		return []string{Skip} // test, delete and rollback hooks: not synced
	}
	return out
}

// IsHook reports whether the object is a hook (Skip included).
func IsHook(o *unstructured.Unstructured) bool { return len(HookTypes(o)) > 0 }

// Wave is the object's sync wave (Helm's hook weight for Helm hooks);
// default 0, negative allowed.
func Wave(o *unstructured.Unstructured) int {
	ann := o.GetAnnotations()
	v, ok := ann[SyncWaveAnnotation]
	if !ok {
		v, ok = ann[HelmHookWeightAnnotation]
	}
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0
	}
	return n
}

// HookDeletePolicies returns the hook's delete policies (Argo CD's, else
// Helm's mapped); BeforeHookCreation when none is set.
func HookDeletePolicies(o *unstructured.Unstructured) []string {
	ann := o.GetAnnotations()
	var out []string
	if v, ok := ann[HookDeletePolicyAnnotation]; ok {
		for _, p := range strings.Split(v, ",") {
			switch p = strings.TrimSpace(p); p {
			case HookSucceeded, HookFailed, BeforeHookCreation:
				out = append(out, p)
			}
		}
	} else if v, ok := ann[HelmHookDeletePolicy]; ok {
		for _, p := range strings.Split(v, ",") {
			switch strings.TrimSpace(p) {
			case "hook-succeeded":
				out = append(out, HookSucceeded)
			case "hook-failed":
				out = append(out, HookFailed)
			case "before-hook-creation":
				out = append(out, BeforeHookCreation)
			}
		}
	}
	if len(out) == 0 {
		out = []string{BeforeHookCreation}
	}
	return out
}

// Phased reports whether a sync of objs needs phases: a hook or a wave
// other than 0.
func Phased(objs []*unstructured.Unstructured) bool {
	for _, o := range objs {
		if IsHook(o) || Wave(o) != 0 {
			return true
		}
	}
	return false
}

// Waves returns the distinct waves of objs, ascending.
func Waves(objs []*unstructured.Unstructured) []int {
	seen := map[int]bool{}
	var out []int
	for _, o := range objs {
		if w := Wave(o); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	sort.Ints(out)
	return out
}

// InWave returns the objects of objs in wave w.
func InWave(objs []*unstructured.Unstructured, w int) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if Wave(o) == w {
			out = append(out, o)
		}
	}
	return out
}

// HooksOf returns the hooks of type t among objs.
func HooksOf(objs []*unstructured.Unstructured, t string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if contains(HookTypes(o), t) {
			out = append(out, o)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
