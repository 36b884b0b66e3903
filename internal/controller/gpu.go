package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// gpuResource is the extended resource canaries are checked for.
const gpuResource corev1.ResourceName = "nvidia.com/gpu"

// podSpecOf is a Deployment's pod template spec (nil when unreadable).
func podSpecOf(d *unstructured.Unstructured) *corev1.PodSpec {
	if d == nil {
		return nil
	}
	m, found, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	if !found {
		return nil
	}
	spec := &corev1.PodSpec{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, spec); err != nil {
		return nil
	}
	return spec
}

// gpusPerPod is what one pod of the Deployment requests (limits count
// where no request is given, as the scheduler does for extended
// resources).
func gpusPerPod(d *unstructured.Unstructured) int64 {
	spec := podSpecOf(d)
	if spec == nil {
		return 0
	}
	return podGPUs(spec)
}

func podGPUs(spec *corev1.PodSpec) int64 {
	var n int64
	for _, c := range spec.Containers {
		q, ok := c.Resources.Requests[gpuResource]
		if !ok {
			q = c.Resources.Limits[gpuResource]
		}
		n += q.Value()
	}
	return n
}

// freeGPUs is the unrequested GPUs on the schedulable nodes a pod of d
// may land on (its tolerations and nodeSelector allow them). It reads
// past the cache: nodes and pods are not otherwise watched.
func (r *ApplicationReconciler) freeGPUs(ctx context.Context, d *unstructured.Unstructured) (int64, error) {
	spec := podSpecOf(d)
	if spec == nil {
		return 0, nil
	}
	var reader client.Reader = r.mgr.GetAPIReader()
	if t, ok := ctx.Value(targetKey{}).(*target); ok && t.remote != nil {
		reader = t.applier.Client()
	}
	var nodes corev1.NodeList
	if err := reader.List(ctx, &nodes); err != nil {
		return 0, fmt.Errorf("list nodes: %w", err)
	}
	var free int64
	for i := range nodes.Items {
		n := &nodes.Items[i]
		alloc := n.Status.Allocatable[gpuResource]
		if alloc.Value() == 0 || n.Spec.Unschedulable || !tolerates(spec, n) || !labels.SelectorFromSet(spec.NodeSelector).Matches(labels.Set(n.Labels)) {
			continue
		}
		var pods corev1.PodList
		if err := reader.List(ctx, &pods, client.MatchingFields{"spec.nodeName": n.Name}); err != nil {
			return 0, fmt.Errorf("list pods on %s: %w", n.Name, err)
		}
		used := int64(0)
		for j := range pods.Items {
			p := &pods.Items[j]
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			used += podGPUs(&p.Spec)
		}
		free += max(0, alloc.Value()-used)
	}
	return free, nil
}

// tolerates: every NoSchedule/NoExecute taint of the node is tolerated.
func tolerates(spec *corev1.PodSpec, n *corev1.Node) bool {
	for i := range n.Spec.Taints {
		t := &n.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		ok := false
		for j := range spec.Tolerations {
			if spec.Tolerations[j].ToleratesTaint(klog.Background(), t, true) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
