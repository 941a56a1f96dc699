package jetstream

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/acme/mastertrust/persistence"
)

// DefaultGroups is the number of groups of a journal created with
// Options.Groups = 0: 64 (docs/architecture.md, "The journal is the
// outbox").
const DefaultGroups = 64

const (
	// streamsDefault spreads the groups over 4 JetStream streams: each
	// stream stores (and with SyncAlways, fsyncs) its messages one after
	// the other, so streams are the unit of write parallelism on one server,
	// and in a cluster each is its own Raft group with its own leader.
	streamsDefault = 4
	// streamsMax bounds the JetStream streams of one journal; each costs a
	// Raft group in a cluster, and a lookup of a stream whose group is not
	// cached asks every one of them.
	streamsMax = 256
	// replicasMax is JetStream's own limit.
	replicasMax = 5
	// requestTimeoutDefault bounds one JetStream request when the caller's
	// context has no deadline: long enough for a quorum write on a busy
	// cluster, short enough that a pot does not hang on a lost server.
	requestTimeoutDefault = 10 * time.Second
	// headCacheEntriesDefault: a head is ~100 bytes, so 100K heads (the
	// active pots of a busy node) take ~10 MB.
	headCacheEntriesDefault = 100_000
	// prefixBytesMax keeps subjects and stream names short.
	prefixBytesMax = 32
)

// Options configures a Store. The zero value is ready to use: Open calls
// EnsureDefaults.
type Options struct {
	// Prefix names the journal's subjects ("<prefix>.ev.…") and JetStream
	// streams ("<prefix>_ev_0", …), so that several journals (or tests)
	// can share a NATS account. Letters, digits, '_' and '-'. Default "mt".
	Prefix string

	// Groups is the number of groups, fixed when the journal is created and
	// stored with it. Zero means: the stored number when the journal
	// exists, DefaultGroups when creating it. Opening an existing journal
	// with another non-zero number is an error. At most
	// persistence.GroupsMax.
	Groups uint32

	// Streams is the number of JetStream streams the groups are spread
	// over, in contiguous ranges (group g is in stream g×Streams/Groups).
	// Fixed at creation like Groups; zero means the stored number, or
	// min(Groups, 4) when creating. At most Groups and 256.
	Streams int

	// Replicas of every JetStream stream: 1 for tests and one server, 3 in
	// production (an append is then acknowledged once a quorum has it).
	// Default 1; at most 5.
	Replicas int

	// RequestTimeout bounds each JetStream request made for a caller whose
	// context has no deadline. Default 10s.
	RequestTimeout time.Duration

	// HeadCacheEntries bounds the cache of stream heads (group, version and
	// sequence of a stream's last append) that saves a lookup before each
	// append. Default 100,000.
	HeadCacheEntries int

	// BatchAppendsMax is the most appends committed together in one
	// atomic batch of a JetStream stream (batch.go): the appends waiting
	// when a batch starts, up to this many. 1 publishes each append on its
	// own. Default 1,000, nats-server's limit.
	BatchAppendsMax int

	// BatchAppendsMin is how many appends of one JetStream stream must be
	// outstanding before they are batched: fewer are published one by one,
	// which costs the server less than a batch of a few. Default 32.
	BatchAppendsMin int

	// BatchesInFlight is how many batches of one JetStream stream may be
	// committing at once. Default 2; at most 50, nats-server's limit.
	BatchesInFlight int

	// Logger for the store's own lines. Default: discard.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults and returns o.
// Groups and Streams stay zero (their defaults depend on what is stored).
func (o *Options) EnsureDefaults() *Options {
	if o.Prefix == "" {
		o.Prefix = "mt"
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = requestTimeoutDefault
	}
	if o.HeadCacheEntries == 0 {
		o.HeadCacheEntries = headCacheEntriesDefault
	}
	if o.BatchAppendsMax == 0 {
		o.BatchAppendsMax = batchAppendsMaxDefault
	}
	if o.BatchAppendsMin == 0 {
		o.BatchAppendsMin = min(batchAppendsMinDefault, o.BatchAppendsMax)
	}
	if o.BatchesInFlight == 0 {
		o.BatchesInFlight = batchesInFlightDefault
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every field out of range, with its value.
func (o *Options) Validate() error {
	var errs []error
	if o.Prefix == "" || len(o.Prefix) > prefixBytesMax || !validPrefix(o.Prefix) {
		errs = append(errs, fmt.Errorf("prefix %q is not 1 to %d of [A-Za-z0-9_-]", o.Prefix, prefixBytesMax))
	}
	if o.Groups > persistence.GroupsMax {
		errs = append(errs, fmt.Errorf("groups %d exceeds %d", o.Groups, persistence.GroupsMax))
	}
	if o.Streams < 0 || o.Streams > streamsMax {
		errs = append(errs, fmt.Errorf("streams %d outside [0, %d]", o.Streams, streamsMax))
	}
	if o.Groups != 0 && o.Streams > int(o.Groups) {
		errs = append(errs, fmt.Errorf("streams %d exceed groups %d", o.Streams, o.Groups))
	}
	if o.Replicas < 1 || o.Replicas > replicasMax {
		errs = append(errs, fmt.Errorf("replicas %d outside [1, %d]", o.Replicas, replicasMax))
	}
	if o.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("request timeout %s is not positive", o.RequestTimeout))
	}
	if o.BatchAppendsMax < 1 || o.BatchAppendsMax > BatchAppendsMaxLimit {
		errs = append(errs, fmt.Errorf("batch appends max %d outside [1, %d]", o.BatchAppendsMax, BatchAppendsMaxLimit))
	}
	if o.BatchAppendsMin < 1 || o.BatchAppendsMin > o.BatchAppendsMax {
		errs = append(errs, fmt.Errorf("batch appends min %d outside [1, batch appends max %d]", o.BatchAppendsMin, o.BatchAppendsMax))
	}
	if o.BatchesInFlight < 1 || o.BatchesInFlight > batchesInFlightLimit {
		errs = append(errs, fmt.Errorf("batches in flight %d outside [1, %d]", o.BatchesInFlight, batchesInFlightLimit))
	}
	if o.HeadCacheEntries < 0 {
		errs = append(errs, fmt.Errorf("head cache entries %d is negative", o.HeadCacheEntries))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("jetstream journal: invalid options: %w", errors.Join(errs...))
}

func validPrefix(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
