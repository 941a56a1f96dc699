package cluster

import (
	"context"
	"log/slog"
)

// libraryLevelsMax caps the level of protoactor log messages about events
// that are expected in a healthy cluster and handled (or reported to the
// caller) by this package, so that Warn and Error keep meaning something.
// Keyed by the exact message of this protoactor build.
var libraryLevelsMax = map[string]slog.Level{
	// Every retried grain call: a stale cached PID after a passivation, a
	// member that left. Call returns the final outcome to the caller.
	"cluster.RequestFuture failed": slog.LevelDebug,
	// A call that ran out of time or retries; Call returns ErrTimeout or
	// ErrUnavailable.
	"Request retried but failed": slog.LevelDebug,
	// A grain that the placement actor no longer tracks stopped; happens
	// for activations stopped while their node shuts down.
	"Terminated actor not found": slog.LevelDebug,
	// Logged at Error for every peer connection when this node or a peer
	// stops; the topology change that follows is what matters.
	"EndpointWriter lost connection": slog.LevelInfo,
}

// endpointConnectFailed is what protoactor's endpoint writer logs, at
// Error with the peer's "address", each time it fails to connect to a peer.
// It then pauses 2 s before it gives up and publishes
// EndpointTerminatedEvent; the log record is the first sign, so
// libraryHandler passes it on (see Node.peerUnreachable). Exact message of
// this protoactor build; TestKVMemberThatNeverAnsweredIsDroppedAtOnce
// fails if it changes.
const endpointConnectFailed = "EndpointWriter failed to connect"

// libraryHandler filters protoactor's log records by level, after lowering
// the known-benign ones (libraryLevelsMax), and tells unreachable (if set)
// of each peer address the endpoint writer failed to connect to, whatever
// the level.
type libraryHandler struct {
	next        slog.Handler
	level       slog.Leveler
	unreachable func(address string)
}

func newLibraryHandler(next slog.Handler, level slog.Leveler, unreachable func(address string)) *libraryHandler {
	return &libraryHandler{next: next, level: level, unreachable: unreachable}
}

func (h *libraryHandler) Enabled(ctx context.Context, level slog.Level) bool {
	if h.unreachable != nil && level >= slog.LevelError {
		return true // endpointConnectFailed must reach Handle
	}
	// Lowering only lowers, so a record below the threshold never passes.
	return level >= h.level.Level() && h.next.Enabled(ctx, level)
}

func (h *libraryHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == endpointConnectFailed && h.unreachable != nil {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "address" {
				h.unreachable(a.Value.String())
				return false
			}
			return true
		})
	}
	if max, ok := libraryLevelsMax[r.Message]; ok && r.Level > max {
		r = r.Clone()
		r.Level = max
	}
	if r.Level < h.level.Level() || !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *libraryHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &libraryHandler{next: h.next.WithAttrs(attrs), level: h.level, unreachable: h.unreachable}
}

func (h *libraryHandler) WithGroup(name string) slog.Handler {
	return &libraryHandler{next: h.next.WithGroup(name), level: h.level, unreachable: h.unreachable}
}
