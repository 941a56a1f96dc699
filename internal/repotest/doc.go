// Package repotest holds tests of the repository as a whole: rules that no
// package owns, such as "every document a comment cites is in the
// repository" and "which package may import which" (the layer table of
// layers_test.go; docs/architecture.md, "Shape" and "Conventions"). It has
// no code of its own; `go test ./internal/repotest` runs the checks.
package repotest
