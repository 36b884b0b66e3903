// Package promote is the model-update workflow on a Git work tree: find
// which model versions a change moves (values files and Helm parameters of
// Applications), check them against the registry (see package gate), bump
// a version on a promotion branch with kyaml so comments survive, and roll
// back with a real `git revert`. It never applies anything to a cluster:
// the controller syncs what Git then says.
package promote
