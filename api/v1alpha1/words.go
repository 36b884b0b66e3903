package v1alpha1

import "time"

// Words that several packages share: the annotations, labels, condition
// types and ConfigMap names users see on objects. They live here so that
// the CLI, the server and the controller spell them once.

// Annotations on an Application.
const (
	// RefreshAnnotation asks for an immediate fetch of the app's
	// repository (Argo CD's "argocd.argoproj.io/refresh").
	RefreshAnnotation = "argocd.argoproj.io/refresh"
	// ManifestGeneratePathsAnnotation lists (";"-separated, relative to
	// the app's path or absolute from the repository root) the paths whose
	// changes affect the app: webhooks refresh it only for pushes touching
	// them, and its render is reused across commits that leave them (and
	// its own path) unchanged.
	ManifestGeneratePathsAnnotation = "argocd.argoproj.io/manifest-generate-paths"
	// RevertedAnnotation lists, comma-separated, the revisions that synced
	// revert commits of this app undid; they are never applied again.
	RevertedAnnotation = "mlcd.io/reverted-revisions"
	// HealthyVersionsAnnotation lists, comma-separated, the model versions
	// this app ran Synced and Healthy and that no revert undid: mlcd's own
	// record, which exempts a rollback from the staging requirement.
	HealthyVersionsAnnotation = "mlcd.io/healthy-versions"
	// HealthyVersionsConfigMap in the control-plane namespace is the
	// record itself, one key per app ("<namespace>.<name>"): tenants who
	// can write their Applications cannot write it. The annotation is a
	// copy for people.
	HealthyVersionsConfigMap = "mlcd-healthy-versions"
)

// Finalizers on an Application, as Argo CD names them: with one of them
// the app's resources are deleted before the app is.
const (
	ResourcesFinalizer           = "resources-finalizer.argocd.argoproj.io"
	ResourcesFinalizerBackground = "resources-finalizer.argocd.argoproj.io/background"
	ResourcesFinalizerForeground = "resources-finalizer.argocd.argoproj.io/foreground"
)

// Annotations the controller keeps on a governed Application: the model,
// environment and the version Git names for it (what the API, CLI and
// metrics show per environment).
const (
	AppAnnotationModel       = "mlcd.io/model"
	AppAnnotationEnvironment = "mlcd.io/model-environment"
	AppAnnotationVersion     = "mlcd.io/model-version"
)

// Lineage annotations on every workload of a governed app (none carries
// a commit: the app's history says which commit deployed the version).
const (
	AnnotationModel        = "mlcd.io/model"
	AnnotationModelVersion = "mlcd.io/model-version"
	AnnotationRunID        = "mlcd.io/registry-run-id"
)

// Model ownership, set by an admin in the control-plane namespace: an
// AppProject's mlcd.io/models lists the registered models (globs,
// comma-separated) its apps may govern, and a ModelPolicy's
// mlcd.io/projects the projects whose apps may govern its model. Once
// either names a model, only those projects' apps are governed by it
// (gate, write-back, promotion, revert); a model no admin mapped may be
// governed by any project.
const (
	AnnotationProjectModels = "mlcd.io/models"
	AnnotationModelProjects = "mlcd.io/projects"
)

// CanarySuffix names a canary workload: <stable name>-canary.
const CanarySuffix = "-canary"

// ConditionModelGate is set when a model version may not be deployed.
const ConditionModelGate = "ModelGateFailed"

// Rollout conditions on an Application: not errors, the canary's word
// (docs/rollouts.md).
const (
	ConditionRolloutProgressing = "RolloutProgressing"
	ConditionRolloutAborted     = "RolloutAborted"
)

// ConfigMaps in the control-plane namespace, in Argo CD's shapes.
const (
	// GPGKeysConfigMap holds the public keys that AppProject
	// signatureKeys name: data key = key ID, value = armored OpenPGP key.
	// mlcd also accepts SSH keys (value = an authorized_keys line), named
	// in a project by fingerprint ("SHA256:…").
	GPGKeysConfigMap = "argocd-gpg-keys-cm"
	// SSHKnownHostsConfigMap holds known_hosts lines under ssh_known_hosts.
	SSHKnownHostsConfigMap = "argocd-ssh-known-hosts-cm"
)

// DefaultControlPlaneNamespace is where mlcd reads AppProjects,
// repository Secrets and keys, as Argo CD's "argocd".
const DefaultControlPlaneNamespace = "argocd"

// DefaultPollInterval is how often a repository is fetched without a
// refresh request (Argo CD's timeout.reconciliation).
const DefaultPollInterval = 3 * time.Minute

// ShortSHA is the first seven characters of a commit hash.
func ShortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}
