// Package registry speaks MLflow's model-registry REST API: a Go client with
// typed errors for talking to a real MLflow (or any compatible server), and
// an embedded MLflow-compatible server on SQLite so mlcd runs on a laptop
// with nothing else installed.
//
// The client and the server share the wire types in types.go, so a field
// added to one is seen by the other. The package knows nothing of Git: the
// mapping from a version string written in Git to a registry version lives
// in Resolve (resolve.go) and is documented in docs/registry.md.
package registry
