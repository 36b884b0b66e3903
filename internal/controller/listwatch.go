package controller

import (
	"os"

	clientfeatures "k8s.io/client-go/features"
)

// Informers list, then watch. client-go 1.35 streams an informer's first
// list over the watch instead (WatchListClient), and the stream ends with
// a bookmark kube-apiserver sends on its bookmark tick, about a second
// later: every informer mlcd starts — one per kind the apps deploy, on the
// first app that deploys it — would hold that app for a second. A user who
// wants streaming lists sets KUBE_FEATURE_WatchListClient=true.
func init() {
	if _, set := os.LookupEnv("KUBE_FEATURE_" + string(clientfeatures.WatchListClient)); set {
		return
	}
	clientfeatures.ReplaceFeatureGates(listThenWatch{clientfeatures.FeatureGates()})
}

type listThenWatch struct{ clientfeatures.Gates }

func (g listThenWatch) Enabled(f clientfeatures.Feature) bool {
	return f != clientfeatures.WatchListClient && g.Gates.Enabled(f)
}
