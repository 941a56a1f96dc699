// Package repotest holds tests of the repository as a whole: rules that no
// package owns, such as "every document a comment cites is in the
// repository" (docs/architecture.md, "Conventions"). It has no code of its
// own; `go test ./internal/repotest` runs the checks.
package repotest
