// Package source fetches Git repositories with go-git into a local cache
// keyed by repository URL, resolves a targetRevision (branch, tag, full or
// short SHA, HEAD) to a commit SHA, and materialises the tree of a commit
// into a directory keyed by repo + SHA. It also owns path confinement:
// every path mlcd reads from a checkout goes through Join or
// CheckConfined, which refuse "..", absolute paths and symlinks that leave
// the checkout. It never renders.
package source
