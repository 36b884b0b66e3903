// Package localcluster starts and stops mlcd's embedded Kubernetes control
// plane: a real kube-apiserver over embedded etcd, the core controllers of
// kube-controller-manager, kube-scheduler and kwok-simulated nodes (a CPU
// node "node-0" and a GPU node "gpu-0" tainted nvidia.com/gpu=present). No
// container runs; kwok marks scheduled pods Running and Ready.
//
// The control plane is built from k8s.io/kubernetes in its own Go module
// (controlplane/ at the repository root) into the helper binary
// mlcd-controlplane, which this package runs as a subprocess, as envtest
// runs kube-apiserver. The main module therefore never links
// k8s.io/kubernetes.
//
// It is used by `mlcd up` and by integration tests (see clustertest); it is
// not part of any production path.
package localcluster
