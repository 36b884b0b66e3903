package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/kwok/kustomize/stage/node/fast"
	heartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
	"sigs.k8s.io/kwok/pkg/apis/internalversion"
	"sigs.k8s.io/kwok/pkg/apis/v1alpha1"
	"sigs.k8s.io/kwok/pkg/client/clientset/versioned"
	"sigs.k8s.io/kwok/pkg/kwok/controllers"
	"sigs.k8s.io/kwok/pkg/utils/client"
	"sigs.k8s.io/yaml"
)

const kwokAnnotation = "kwok.x-k8s.io/node"

// simulatedNodes are the Node objects of the local cluster: a CPU node and
// a GPU node tainted the way GKE taints GPU pools, so a workload must
// tolerate the taint and request nvidia.com/gpu to land there.
func simulatedNodes(o options) []*corev1.Node {
	base := func(name string, extra corev1.ResourceList) *corev1.Node {
		capacity := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(o.nodeCPU),
			corev1.ResourceMemory: resource.MustParse(o.nodeMemory),
			corev1.ResourcePods:   resource.MustParse(o.nodePods),
		}
		for k, v := range extra {
			capacity[k] = v
		}
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{kwokAnnotation: "fake"},
				Labels: map[string]string{
					"kubernetes.io/hostname": name,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
					"type":                   "kwok",
				},
			},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
		}
	}
	cpu := base("node-0", nil)
	gpu := base("gpu-0", corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("4")})
	gpu.Labels["cloud.google.com/gke-nodepool"] = "gpu-inference"
	gpu.Labels["cloud.google.com/gke-accelerator"] = "nvidia-tesla-t4"
	gpu.Spec.Taints = []corev1.Taint{{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule}}
	return []*corev1.Node{cpu, gpu}
}

func stages(podReadyDelay time.Duration) (map[internalversion.StageResourceRef][]*internalversion.Stage, error) {
	out := map[internalversion.StageResourceRef][]*internalversion.Stage{}
	add := func(doc string, delay time.Duration) error {
		var s v1alpha1.Stage
		if err := yaml.Unmarshal([]byte(doc), &s); err != nil {
			return err
		}
		if delay > 0 {
			ms := delay.Milliseconds()
			s.Spec.Delay = &v1alpha1.StageDelay{DurationMilliseconds: &ms}
		}
		in, err := internalversion.ConvertToInternalStage(&s)
		if err != nil {
			return err
		}
		out[in.Spec.ResourceRef] = append(out[in.Spec.ResourceRef], in)
		return nil
	}
	for _, d := range []struct {
		doc   string
		delay time.Duration
	}{
		{fast.DefaultNodeInit, 0},
		{heartbeat.DefaultNodeHeartbeatWithLease, 0},
		{podfast.DefaultPodReady, podReadyDelay},
		{podfast.DefaultPodComplete, 0},
		{podfast.DefaultPodDelete, 0},
	} {
		if err := add(d.doc, d.delay); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// startNodes registers the simulated nodes and runs kwok, which keeps them
// Ready and moves their pods through Pending → Running → deleted.
func startNodes(ctx context.Context, cfg *rest.Config, kubeconfig string, o options) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, n := range simulatedNodes(o) {
		if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", n.Name, err)
		}
	}
	groups, err := stages(o.podReadyDelay)
	if err != nil {
		return err
	}
	kc, err := client.NewClientset("", kubeconfig)
	if err != nil {
		return err
	}
	kwokCfg, err := kc.ToRESTConfig()
	if err != nil {
		return err
	}
	dyn, err := kc.ToDynamicClient()
	if err != nil {
		return err
	}
	mapper, err := kc.ToRESTMapper()
	if err != nil {
		return err
	}
	restClient, err := rest.RESTClientFor(kwokCfg)
	if err != nil {
		return err
	}
	kwokClient, err := versioned.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctr, err := controllers.NewController(controllers.Config{
		Clock:                             clock.RealClock{},
		DynamicClient:                     dyn,
		RESTClient:                        restClient,
		RESTMapper:                        mapper,
		ImpersonatingDynamicClient:        kc.ToImpersonatingDynamicClient(),
		ImpersonatingTypedClient:          kc.ToImpersonatingTypedClient(),
		TypedClient:                       cs,
		TypedKwokClient:                   kwokClient,
		ManageNodesWithAnnotationSelector: kwokAnnotation + "=fake",
		CIDR:                              "10.0.0.1/16",
		NodeIP:                            "10.0.0.1",
		LocalStages:                       groups,
		PodPlayStageParallelism:           16,
		NodePlayStageParallelism:          4,
		NodeLeaseDurationSeconds:          40,
		NodeLeaseParallelism:              4,
		PodsOnNodeSyncParallelism:         4,
		ID:                                "mlcd-controlplane",
	})
	if err != nil {
		return err
	}
	if err := ctr.Start(ctx); err != nil {
		return err
	}
	// Wait until the nodes report Ready so callers can schedule at once.
	deadline := time.Now().Add(60 * time.Second)
	for {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		ready := 0
		if err == nil {
			for _, n := range nodes.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
			if ready >= len(simulatedNodes(o)) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("simulated nodes not Ready after 60s (%d ready)", ready)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
