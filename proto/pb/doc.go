// Package pb holds the Go code generated from the protobuf files in proto/:
// the commands, replies and events that are both the journal's wire format
// and the cluster's messages, and the grain services' clients (the grain
// kind name of a service is its proto service name, e.g. "Pot"; the actors
// host the grains with kinds of their own, so proto/gen.sh keeps only the
// calling side of each service).
//
// Every file here but this one is generated and committed, so that a build
// needs no protoc; hand-written code that works with these messages lives
// elsewhere (package codec maps domain events and snapshots to them). Do not
// edit the generated files: change proto/*.proto and run
//
//	go generate ./proto/pb
//
// which runs proto/gen.sh. The script checks that protoc, protoc-gen-go and
// protoc-gen-go-grain are installed at the versions go.mod implies and
// prints how to install them if not.
package pb

//go:generate bash ../gen.sh
