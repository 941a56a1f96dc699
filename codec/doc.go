// Package codec is the journal's form of what the actors store: a pot's
// domain events and snapshots, written as the protobuf messages of package
// pb, and the system grains' events (any message of package pb).
//
// It is hand-written code kept out of proto/pb, which holds only what
// proto/gen.sh generates; it sits between the pure core and the wire format:
// it imports domain and pb, and the actors (and the tests and benchmarks
// that read a journal) import it.
package codec
