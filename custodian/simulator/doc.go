// Package simulator is a simulated custodian: the other side of the
// protocol of package custodian, for dev mode, tests and fault drills. It
// takes ACME's orders from JetStream, executes them at the day's published
// price, answers with execution reports and holdings statements, and can
// misbehave on purpose (Faults).
//
// It keeps its own books, a Pebble journal under its data directory, which
// is why it is a package of its own: the platform's side of the protocol
// (package custodian) links no Pebble.
//
// simulator.go holds the order loop and the holdings responder; ledger.go
// the durable books; faults.go the fault injection. The tests here run the
// protocol end to end: ACME's client against the simulator.
// docs/custodian.md, "The simulated custodian", describes it for people.
package simulator
