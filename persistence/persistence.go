// Package persistence is the one journal contract that every event-sourced
// actor of mastertrust (pots, aggregators, asset books, the price book, …)
// writes through, and every downstream consumer reads from.
//
// A journal holds streams. A stream is the history of one actor: events with
// contiguous versions 1, 2, 3, …, appended only with the expected version of
// the writer, so that a second writer (two activations of one pot) fails with
// ErrVersionConflict instead of forking the history.
//
// Every stream belongs to one group. A group's feed is every event appended to
// any stream of that group, in commit order, each with a Position that only
// grows. A consumer stores the position it has applied together with its own
// state and resumes after it: it sees every event at least once and applies it
// exactly once. The journal is therefore also the outbox: nothing is "sent
// after save".
//
// Snapshots are a cache: losing one loses no data, because the journal is the
// truth.
//
// Backends live in sub-packages (persistence/pebble, persistence/jetstream)
// and pass the same acceptance suite, persistencetest.Run.
package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrVersionConflict: the stream's version is not the expected one
	// (another writer got there first). Nothing of the failed append is
	// visible anywhere.
	ErrVersionConflict = errors.New("persistence: version conflict")
	// ErrClosed: the journal was closed.
	ErrClosed = errors.New("persistence: journal closed")
	// ErrInvalid: the request breaks the contract (empty stream name, group
	// out of range, no events, an event too large, ...). A programmer error
	// surfaced as an error because it crosses an API boundary.
	ErrInvalid = errors.New("persistence: invalid request")
)

// Error gives a failed operation its context. It wraps one of the sentinels
// above, or a backend error.
type Error struct {
	Op              string // "append", "read", "read feed", "save snapshot", ...
	Stream          string // empty for feed operations
	Group           uint32
	ExpectedVersion uint64 // for appends
	ActualVersion   uint64 // for version conflicts, when the backend knows it
	// ActualUnknown, for a version conflict, says why the backend could
	// not read the stream's version (ActualVersion is then meaningless):
	// a backend that learns of the conflict from its server reads the
	// version afterwards, and that read can fail.
	ActualUnknown error
	Err           error
}

func (e *Error) Error() string {
	if e.Stream == "" {
		return fmt.Sprintf("persistence: %s group %d: %v", e.Op, e.Group, e.Err)
	}
	if errors.Is(e.Err, ErrVersionConflict) && e.ActualUnknown != nil {
		return fmt.Sprintf("persistence: %s %q: expected version %d; could not read the stream's version (%v): %v",
			e.Op, e.Stream, e.ExpectedVersion, e.ActualUnknown, e.Err)
	}
	if errors.Is(e.Err, ErrVersionConflict) {
		return fmt.Sprintf("persistence: %s %q: expected version %d, stream is at %d: %v",
			e.Op, e.Stream, e.ExpectedVersion, e.ActualVersion, e.Err)
	}
	return fmt.Sprintf("persistence: %s %q: %v", e.Op, e.Stream, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Limits, shared by every backend so that a stream written on one can be
// moved to another.
const (
	// StreamNameBytesMax bounds a stream name. Names look like
	// "pot/M000123" or "agg/2026-11-23/17"; 128 leaves room and keeps keys
	// (and NATS subjects) short.
	StreamNameBytesMax = 128
	// EventTypeBytesMax bounds an event type name ("pot.TradeAccepted").
	EventTypeBytesMax = 64
	// EventDataBytesMax bounds one event's payload. A pot event is a few
	// hundred bytes; an aggregator's manifest event for 100K trades is a few
	// MB, so manifests must be chunked by the caller. 1 MiB also stays under
	// NATS's default max_payload.
	EventDataBytesMax = 1 << 20
	// AppendEventsMax bounds the events of one Append: a pot drains its
	// mailbox into one batch, and the batch must be atomic.
	AppendEventsMax = 1024
	// AppendDataBytesMax bounds the bytes of one Append (every event's
	// type and data together). A backend that stores an append as one
	// message (JetStream) must fit it in one NATS message: 4 MiB plus
	// framing (two varints per event, at most 20 KiB, and headers) stays
	// under an 8 MiB max_payload, the largest nats-server recommends.
	// A pot's batch is a few KB; a manifest of several 1 MiB chunks takes
	// several appends.
	AppendDataBytesMax = 4 << 20
	// SnapshotDataBytesMax bounds a snapshot's payload, for the same
	// reason: one snapshot is one NATS message on JetStream. A pot's state
	// is a few KB.
	SnapshotDataBytesMax = 4 << 20
	// GroupsMax bounds the number of groups of a journal. The plan is 64;
	// 65536 keeps per-group state (a feed cursor, a subject) small and
	// bounded.
	GroupsMax = 1 << 16
)

// NewEvent is an event handed to Append. The journal assigns its version,
// group and commit time.
type NewEvent struct {
	Type string // event type name, readable without decoding Data
	Data []byte // opaque payload (protobuf)
}

// Event is a stored event, as read back.
type Event struct {
	Stream  string
	Version uint64 // 1-based, contiguous within a stream
	Group   uint32
	Type    string
	Time    time.Time // commit time (UTC), the same for every event of one append
	Data    []byte
}

// FeedEvent is an event read from a group's feed.
type FeedEvent struct {
	// Position orders the group's feed: strictly increasing in commit order,
	// not necessarily contiguous. Consumers resume after the last position
	// they applied.
	Position uint64
	Event
}

// Snapshot is a cached state of a stream at a version.
type Snapshot struct {
	Stream  string
	Version uint64
	Data    []byte
}

// AppendRequest is one atomic append to one stream.
type AppendRequest struct {
	Stream string
	Group  uint32
	// ExpectedVersion is the version the stream must be at (0: the stream
	// must not exist yet).
	ExpectedVersion uint64
	Events          []NewEvent
}

// Journal is the contract.
//
// All methods are safe for concurrent use. Append returns only once the
// events are durable (synced to disk or to a quorum): a caller may
// acknowledge its client as soon as Append returns nil. Read and ReadFeed
// return only durable events, and ReadFeed never returns a position while
// an event with a smaller position in that group may still appear: a
// consumer that checkpoints the last position it read misses nothing.
type Journal interface {
	// Append appends req.Events atomically (all or none) at versions
	// ExpectedVersion+1 … ExpectedVersion+len(Events) and returns the new
	// version. If the stream is not at ExpectedVersion it returns an *Error
	// wrapping ErrVersionConflict and appends nothing. Concurrent appends to
	// different streams may be group-committed in one synced write.
	//
	// A stream's group is fixed by its first append; an append naming
	// another group fails with ErrInvalid.
	//
	// If ctx is done before the append is submitted, Append returns ctx's
	// error and appends nothing. Any error other than ErrVersionConflict
	// and ErrInvalid (a timeout waiting for a quorum, a closed connection,
	// ctx ending while the backend waits) leaves the outcome unknown: the
	// caller must not acknowledge, and reads the stream to learn it.
	Append(ctx context.Context, req AppendRequest) (newVersion uint64, err error)

	// Read returns the events of stream with version ≥ fromVersion (1 for
	// the whole stream), in version order, at most limit of them (limit ≤ 0:
	// all). A stream that does not exist reads as empty.
	Read(ctx context.Context, stream string, fromVersion uint64, limit int) ([]Event, error)

	// ReadFeed returns the events of group with Position > after, in
	// position order, at most limit of them (limit must be > 0). Reading with
	// after = 0 starts at the beginning of the feed.
	ReadFeed(ctx context.Context, group uint32, after uint64, limit int) ([]FeedEvent, error)

	// SaveSnapshot stores a snapshot, replacing an older one of the stream.
	// A snapshot older than the stored one is ignored.
	SaveSnapshot(ctx context.Context, s Snapshot) error

	// LoadSnapshot returns the stream's latest snapshot; found is false when
	// there is none.
	LoadSnapshot(ctx context.Context, stream string) (s Snapshot, found bool, err error)

	// Groups is the number of groups, fixed when the journal was created;
	// valid groups are 0 … Groups()-1.
	Groups() uint32

	// Close flushes and releases resources. Appends in flight either
	// complete or fail with ErrClosed.
	Close() error
}

// DataBytes is the bytes of every event's type and data together, which
// AppendDataBytesMax bounds.
func (r AppendRequest) DataBytes() int {
	total := 0
	for _, e := range r.Events {
		total += len(e.Type) + len(e.Data)
	}
	return total
}

// Validate checks an append request against the contract's limits.
func (r AppendRequest) Validate(groups uint32) error {
	var problem string
	switch {
	case r.Stream == "":
		problem = "empty stream name"
	case len(r.Stream) > StreamNameBytesMax:
		problem = fmt.Sprintf("stream name of %d bytes exceeds %d", len(r.Stream), StreamNameBytesMax)
	case !validStreamName(r.Stream):
		problem = fmt.Sprintf("stream name %q has a character outside [A-Za-z0-9/_:-]", r.Stream)
	case r.Group >= groups:
		problem = fmt.Sprintf("group %d out of range [0, %d)", r.Group, groups)
	case len(r.Events) == 0:
		problem = "no events"
	case len(r.Events) > AppendEventsMax:
		problem = fmt.Sprintf("%d events exceed %d", len(r.Events), AppendEventsMax)
	}
	if problem == "" {
		total := 0
		for i, e := range r.Events {
			total += len(e.Type) + len(e.Data)
			switch {
			case e.Type == "":
				problem = fmt.Sprintf("event %d: empty type", i)
			case len(e.Type) > EventTypeBytesMax:
				problem = fmt.Sprintf("event %d: type of %d bytes exceeds %d", i, len(e.Type), EventTypeBytesMax)
			case len(e.Data) > EventDataBytesMax:
				problem = fmt.Sprintf("event %d: %d bytes of data exceed %d", i, len(e.Data), EventDataBytesMax)
			}
			if problem != "" {
				break
			}
		}
		if problem == "" && total > AppendDataBytesMax {
			problem = fmt.Sprintf("%d bytes of types and data exceed %d", total, AppendDataBytesMax)
		}
	}
	if problem == "" {
		return nil
	}
	return &Error{Op: "append", Stream: r.Stream, Group: r.Group, ExpectedVersion: r.ExpectedVersion,
		Err: fmt.Errorf("%w: %s", ErrInvalid, problem)}
}

// ValidateStream checks a stream name given to Read or LoadSnapshot; op
// names the operation for the error.
func ValidateStream(op, stream string) error {
	var problem string
	switch {
	case stream == "":
		problem = "empty stream name"
	case len(stream) > StreamNameBytesMax:
		problem = fmt.Sprintf("stream name of %d bytes exceeds %d", len(stream), StreamNameBytesMax)
	case !validStreamName(stream):
		problem = fmt.Sprintf("stream name %q has a character outside [A-Za-z0-9/_:-]", stream)
	default:
		return nil
	}
	return &Error{Op: op, Stream: stream, Err: fmt.Errorf("%w: %s", ErrInvalid, problem)}
}

// Validate checks a snapshot given to SaveSnapshot: a valid stream name, a
// version of at least 1 (a snapshot of nothing is no snapshot) and at most
// SnapshotDataBytesMax bytes of data.
func (s Snapshot) Validate() error {
	if err := ValidateStream("save snapshot", s.Stream); err != nil {
		return err
	}
	var problem string
	switch {
	case s.Version == 0:
		problem = "version 0"
	case len(s.Data) > SnapshotDataBytesMax:
		problem = fmt.Sprintf("%d bytes of data exceed %d", len(s.Data), SnapshotDataBytesMax)
	default:
		return nil
	}
	return &Error{Op: "save snapshot", Stream: s.Stream, Err: fmt.Errorf("%w: %s", ErrInvalid, problem)}
}

// ValidateFeed checks the arguments of ReadFeed.
func ValidateFeed(group, groups uint32, limit int) error {
	var problem string
	switch {
	case group >= groups:
		problem = fmt.Sprintf("group %d out of range [0, %d)", group, groups)
	case limit <= 0:
		problem = fmt.Sprintf("limit %d is not positive", limit)
	default:
		return nil
	}
	return &Error{Op: "read feed", Group: group, Err: fmt.Errorf("%w: %s", ErrInvalid, problem)}
}

// validStreamName reports whether every byte of name is in [A-Za-z0-9/_:-],
// so that every backend can use it in a key or a NATS subject token without
// escaping.
func validStreamName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '/', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}
