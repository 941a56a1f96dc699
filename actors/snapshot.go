package actors

// When a pot saves a snapshot.
//
// A snapshot is the pot's whole state, and the state grows with the pot's
// history (its movements, orders and trades stay; docs/domain.md, "History
// and retention"), while the events of a command stay the same size. Saving
// every fixed number of events would make the snapshots' share of the
// journal's writes, and of the pot's CPU (encoding them), grow with the
// pot's age without bound: a pot of 50 contributions (102 events, 4.7 KB of
// them) has a 4.6 KB snapshot, one of 100 contributions 9.1 KB against
// 9.3 KB (codec.BenchmarkPotSnapshot; the JSON snapshots of format 1 were
// 3.6 times the events' bytes). So a pot waits until the events since
// its last snapshot weigh as much as that snapshot did: snapshots then add
// at most about the events' own bytes to what is written, whatever the
// pot's age, and a recovery reads at most about twice the state's weight
// (the snapshot, then no more events than it weighs).

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
