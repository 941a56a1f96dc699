package actors

// When a pot saves a snapshot.
//
// A snapshot is the pot's whole state, and the state grows with the pot's
// history (its movements, orders and trades stay; DOMAIN.md), while the
// events of a command stay the same size. Saving every fixed number of
// events would make the snapshots' share of the journal's writes, and of
// the pot's CPU (encoding them), grow with the pot's age without bound: at
// 100 events a pot's JSON snapshot weighed 17 KB against 4.7 KB of events
// (pb.BenchmarkPotSnapshot has the protobuf figures). So a pot waits until the events since its last
// snapshot weigh as much as that snapshot did: snapshots then add at most
// about the events' own bytes to what is written, whatever the pot's age,
// and a recovery reads at most about twice the state's weight (the
// snapshot, then no more events than it weighs).

// snapshotProgress is what a pot has appended since its last snapshot.
type snapshotProgress struct {
	// version of the last snapshot saved or recovered from (0: none).
	version uint64
	// bytes of that snapshot (0: none).
	bytes int
	// eventBytes are the data bytes of the events after version.
	eventBytes int
}

// snapshotDue reports whether a pot at version should save a snapshot:
// at least everyEvents events since the last one, and those events weigh at
// least as much as it did.
func snapshotDue(version uint64, p snapshotProgress, everyEvents uint64) bool {
	return version-p.version >= everyEvents && p.eventBytes >= p.bytes
}
