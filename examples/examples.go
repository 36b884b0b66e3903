// Package examples embeds the example repositories mlcd up can sync.
package examples

import "embed"

// MLDeployments is the seed's repository layout: models with Helm charts and
// values per environment, AppProjects and an app-of-apps.
//
//go:embed all:ml-deployments
var MLDeployments embed.FS

// MLDeploymentsRepoURL is the repoURL written in the example's manifests.
const MLDeploymentsRepoURL = "https://github.com/company/ml-deployments.git"
