// Package controller holds mlcd's reconcilers. The Application reconciler
// runs the loop of docs/design.md for one app — source → render → gate →
// apply → prune → health → status — level-based, with one failure reason
// per step. It wires the engine packages and owns requeue and backoff; it
// serves no HTTP.
package controller
