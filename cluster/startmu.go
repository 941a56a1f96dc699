package cluster

import (
	"sync"
)

// startMu serializes the parts of starting a node that write process-wide
// variables of third parties, shared by every node of the process:
//
//   - the generated NewXKind constructors store their grain factory in a
//     package variable (Kind.New calls them);
//   - protoactor's remote.Start calls grpclog.SetLoggerV2, which writes gRPC's
//     logger variables without synchronization while the gRPC goroutines of
//     nodes already running read them on every log call.
//
// Two starts at once are a write/write race on both. Every Start and
// StartClient holds startMu from before it builds its kinds until protoactor
// has started the remote (placementLookup's Setup hook releases it), which
// orders the writes. The writes are benign in practice (the same values are
// written each time) but the race detector reports them.
//
// A start while other nodes run is also a write/read race with those nodes'
// gRPC goroutines; in race-enabled builds raceSyncIO and raceProbe
// (race.go) order those reads before the next write. They are no-ops
// otherwise.
//
// It is package state because what it guards is process state.
var startMu sync.Mutex
