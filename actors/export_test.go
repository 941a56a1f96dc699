package actors

// SnapshotVersion is the version of the snapshot RecoverPot recovered from
// (0: none), for the external tests.
func SnapshotVersion(p snapshotProgress) uint64 { return p.version }
