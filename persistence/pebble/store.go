// Package pebble is the journal on an embedded Pebble database: the default
// backend for one node, dev mode and benchmarks.
//
// Group commit: every append goes through one commit queue (committer.go),
// which writes the appends waiting at once as one Pebble batch with
// pebble.Sync and answers them when the WAL sync that covers the batch ends.
// One writer makes the version check a lookup in its own map of stream heads
// and a group's feed positions follow commit order; what Pebble does not
// give, this package adds:
//
//   - The version check: an append states the version it expects the stream
//     at; the committer compares it with the head, which includes every
//     append before it in the queue.
//   - The feed's visibility and the stream's: Pebble makes a batch readable
//     before its WAL sync ends. ReadFeed reads only up to a per-group
//     watermark below which every append is durable (groupFeed), and Read
//     stops below a stream's versions in flight (pendingStreams).
package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"

	"github.com/acme/mastertrust/internal/pebbleopts"
	"github.com/acme/mastertrust/persistence"
)

// Store is a persistence.Journal on a Pebble database. It holds the
// database's directory lock: one Store per directory.
type Store struct {
	db      *cpebble.DB
	cache   *cpebble.Cache // the DB's block cache, shared (BlockCache)
	groups  uint32
	log     *slog.Logger
	commits *committer      // every append goes through it
	pending *pendingStreams // versions written, not yet synced
	snaps   *streamLocks    // snapshot saves, per stream
	// snapVersions: the stored snapshot versions of recently used streams.
	snapVersions *snapshotVersions
	ops          sync.Pool   // of *appendOp, each with its result channel
	feeds        []groupFeed // one per group

	// mu is read-held by every operation and write-held by Close, so that
	// Close waits for the operations in flight and later ones see closed.
	mu     sync.RWMutex
	closed bool // guarded by mu

	// broken holds the error of a failed synced write. After one, what
	// Pebble has made visible may not be durable, so the store refuses
	// every later operation instead of serving it.
	broken atomic.Pointer[error]
}

var _ persistence.Journal = (*Store)(nil)

// An index entry counts an append's events in 16 bits.
const _ = uint16(persistence.AppendEventsMax)

// Open opens the journal in dir, creating it if dir holds no journal.
func Open(dir string, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	// The Store keeps its reference until Close (BlockCache); the DB takes
	// its own.
	cache := cpebble.NewCache(opts.CacheBytes)
	ok := false
	defer func() {
		if !ok {
			cache.Unref()
		}
	}()
	popts := &cpebble.Options{
		FS:     opts.FS,
		Cache:  cache,
		Logger: pebbleLogger{opts.Logger},
	}
	pebbleopts.Apply(popts, opts.MemTableBytes, opts.BloomBitsPerKey)
	if d := opts.WALMinSyncInterval; d > 0 {
		popts.WALMinSyncInterval = func() time.Duration { return d }
	}
	db, err := cpebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("pebble journal: open %s: %w", dir, err)
	}
	groups, err := loadOrCreateConfig(db, opts.Groups)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("pebble journal: open %s: %w", dir, err), db.Close())
	}
	s := &Store{
		db:           db,
		cache:        cache,
		groups:       groups,
		log:          opts.Logger,
		pending:      newPendingStreams(),
		snaps:        newStreamLocks(),
		snapVersions: newSnapshotVersions(opts.HeadCacheEntries),
		feeds:        make([]groupFeed, groups),
	}
	next, err := s.loadFeedPositions()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("pebble journal: open %s: %w", dir, err), db.Close())
	}
	s.ops.New = func() any { return &appendOp{result: make(chan appendResult, 1)} }
	s.commits = newCommitter(s, opts.HeadCacheEntries, next)
	s.log.Debug("pebble journal opened", "dir", dir, "groups", groups)
	ok = true
	return s, nil
}

// loadOrCreateConfig returns the stored number of groups, or stores want
// (or DefaultGroups) in a database that is still empty.
func loadOrCreateConfig(db *cpebble.DB, want uint32) (uint32, error) {
	v, closer, err := db.Get(keyGroups)
	if err == nil {
		defer closer.Close()
		if len(v) != 4 {
			return 0, fmt.Errorf("%w: groups value of %d bytes", errCorrupt, len(v))
		}
		stored := binary.BigEndian.Uint32(v)
		if want != 0 && want != stored {
			return 0, fmt.Errorf("the journal was created with %d groups, not %d", stored, want)
		}
		lv, lcloser, err := db.Get(keyLayout)
		if err != nil {
			return 0, fmt.Errorf("layout version: %w", err)
		}
		defer lcloser.Close()
		if len(lv) != 1 || lv[0] != layoutVersion {
			return 0, fmt.Errorf("key layout %v, this build reads %d", lv, layoutVersion)
		}
		return stored, nil
	}
	if !errors.Is(err, cpebble.ErrNotFound) {
		return 0, err
	}
	// A database with keys but no config was not made by this package.
	it, err := db.NewIter(nil)
	if err != nil {
		return 0, err
	}
	nonEmpty := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, err
	}
	if nonEmpty {
		return 0, errors.New("the directory holds a Pebble database that is not a journal")
	}
	if want == 0 {
		want = DefaultGroups
	}
	b := db.NewBatch()
	defer b.Close()
	if err := errors.Join(
		b.Set(keyGroups, binary.BigEndian.AppendUint32(nil, want), nil),
		b.Set(keyLayout, []byte{layoutVersion}, nil),
	); err != nil {
		return 0, err
	}
	if err := b.Commit(cpebble.Sync); err != nil {
		return 0, err
	}
	return want, nil
}

// loadFeedPositions makes each group's feed readable up to the last position
// stored and returns the next position of each. Positions lost in a crash
// (written but never synced) were never readable (the watermark was below
// them), so reusing them is safe.
func (s *Store) loadFeedPositions() ([]uint64, error) {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{prefixFeed}, UpperBound: []byte{prefixFeed + 1}})
	if err != nil {
		return nil, err
	}
	next := make([]uint64, s.groups)
	for g := range s.groups {
		last := uint64(0)
		if it.SeekLT(feedGroupUpper(g)) {
			if kg, pos, ok := parseFeedKey(it.Key()); ok && kg == g {
				last = pos
			} else if !ok {
				return nil, errors.Join(fmt.Errorf("%w: feed key %x", errCorrupt, it.Key()), it.Close())
			}
		}
		next[g] = last + 1
		s.feeds[g].visible.Store(last)
	}
	return next, errors.Join(it.Error(), it.Close())
}

// Groups implements persistence.Journal.
func (s *Store) Groups() uint32 { return s.groups }

// Append implements persistence.Journal: the append waits in the commit
// queue (committer.go) and returns once the round that holds it is synced.
func (s *Store) Append(ctx context.Context, req persistence.AppendRequest) (uint64, error) {
	if err := req.Validate(s.groups); err != nil {
		return 0, err
	}
	// Held until the append is answered (see answer), so that Close waits
	// for it.
	s.mu.RLock()
	if err := s.usable(ctx); err != nil {
		s.mu.RUnlock()
		return 0, appendError(&appendOp{req: req, err: err})
	}
	op := s.ops.Get().(*appendOp)
	op.req = req
	s.commits.submit(op)
	r := <-op.result
	*op = appendOp{result: op.result}
	s.ops.Put(op)
	return r.version, r.err
}

// answer gives an append its result and ends the operation. The committer
// and the syncer must not touch op afterwards: it goes back to the pool.
func (s *Store) answer(op *appendOp) {
	r := appendResult{version: op.newVersion, err: op.err}
	if r.err != nil {
		r = appendResult{err: appendError(op)}
	}
	op.result <- r
	s.mu.RUnlock()
}

// appendError is op's error as Append returns it: a *persistence.Error.
func appendError(op *appendOp) error {
	var perr *persistence.Error
	if errors.As(op.err, &perr) {
		return op.err
	}
	return &persistence.Error{Op: "append", Stream: op.req.Stream, Group: op.req.Group, ExpectedVersion: op.req.ExpectedVersion, Err: op.err}
}

// brokenErr is the error of a failed synced write, if there was one.
func (s *Store) brokenErr() error {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// setBroken records a failed synced write: what Pebble has made visible may
// not be durable, so the store refuses every later operation.
func (s *Store) setBroken(err error, stream string) {
	err = fmt.Errorf("synced write failed, journal refuses further operations: %w", err)
	if s.broken.CompareAndSwap(nil, &err) {
		s.log.Error("pebble journal: synced write failed", "stream", stream, "err", err)
	}
}

// usable reports why the store cannot serve an operation; s.mu must be
// read-held.
func (s *Store) usable(ctx context.Context) error {
	if s.closed {
		return persistence.ErrClosed
	}
	if err := s.brokenErr(); err != nil {
		return err
	}
	return ctx.Err()
}

// readHead returns a stream's version and group from its last index entry
// (version 0: no stream).
func (s *Store) readHead(stream string) (streamHead, error) {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: indexKey(stream, 0), UpperBound: indexUpper(stream)})
	if err != nil {
		return streamHead{}, err
	}
	defer it.Close()
	if !it.Last() {
		return streamHead{}, it.Error()
	}
	v, ok := parseIndexKey(it.Key(), stream)
	e, ok2 := parseIndexValue(it.Value())
	if !ok || !ok2 {
		return streamHead{}, fmt.Errorf("%w: index entry %x", errCorrupt, it.Key())
	}
	return streamHead{version: v, group: e.group}, nil
}

// ctxCheckEvery is how many events a read decodes between two looks at its
// context: a read of a few thousand events takes about a millisecond, and a
// look costs an atomic load.
const ctxCheckEvery = 256

// eventsPreallocMax bounds the slice a read allocates up front, whatever
// limit the caller asked for.
const eventsPreallocMax = 1024

// Read implements persistence.Journal.
func (s *Store) Read(ctx context.Context, stream string, fromVersion uint64, limit int) ([]persistence.Event, error) {
	const op = "read"
	if err := persistence.ValidateStream(op, stream); err != nil {
		return nil, err
	}
	fail := func(err error) ([]persistence.Event, error) {
		return nil, &persistence.Error{Op: op, Stream: stream, Err: err}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fail(err)
	}
	if fromVersion == 0 {
		fromVersion = 1
	}
	if limit <= 0 {
		limit = math.MaxInt
	}
	index, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: indexKey(stream, fromVersion), UpperBound: indexUpper(stream)})
	if err != nil {
		return fail(err)
	}
	defer index.Close()
	feed, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{prefixFeed}, UpperBound: []byte{prefixFeed + 1}})
	if err != nil {
		return fail(err)
	}
	defer feed.Close()
	// After both iterators exist: see streamLocks.pendingFrom.
	maxVersion := uint64(math.MaxUint64)
	if p := s.pending.pendingFrom(stream); p > 0 {
		maxVersion = p - 1
	}

	var out []persistence.Event
	next := fromVersion // the version due next
	for ok := index.First(); ok && len(out) < limit; ok = index.Next() {
		last, ok := parseIndexKey(index.Key(), stream)
		e, ok2 := parseIndexValue(index.Value())
		if !ok || !ok2 {
			return fail(fmt.Errorf("%w: index entry %x", errCorrupt, index.Key()))
		}
		first := last - uint64(e.count) + 1
		if first > next || last < next {
			return fail(fmt.Errorf("%w: append of versions %d..%d where %d was due", errCorrupt, first, last, next))
		}
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		// The append's events are at consecutive positions: one seek, then
		// steps.
		pos := e.firstPos + (next - first)
		for ok := feed.SeekGE(feedKey(e.group, pos)); next <= last && next <= maxVersion && len(out) < limit; ok = feed.Next() {
			if !ok {
				return fail(errors.Join(fmt.Errorf("%w: no feed entry for version %d", errCorrupt, next), feed.Error()))
			}
			if kg, kp, _ := parseFeedKey(feed.Key()); kg != e.group || kp != pos {
				return fail(fmt.Errorf("%w: version %d points at group %d position %d, found %d/%d", errCorrupt, next, e.group, pos, kg, kp))
			}
			ev, err := s.decode(feed.Value(), e.group)
			if err != nil {
				return fail(err)
			}
			if ev.Stream != stream || ev.Version != next {
				return fail(fmt.Errorf("%w: version %d points at %s@%d", errCorrupt, next, ev.Stream, ev.Version))
			}
			out = append(out, ev)
			next++
			pos++
		}
		if next <= last { // stopped by maxVersion or limit
			break
		}
	}
	if err := errors.Join(index.Error(), feed.Error()); err != nil {
		return fail(err)
	}
	return out, nil
}

func (s *Store) decode(v []byte, group uint32) (persistence.Event, error) {
	d, err := decodeEventValue(v)
	if err != nil {
		return persistence.Event{}, err
	}
	return persistence.Event{
		Stream:  string(d.stream),
		Version: d.version,
		Group:   group,
		Type:    string(d.typ),
		Time:    time.Unix(0, d.unixNs).UTC(),
		Data:    append([]byte(nil), d.data...),
	}, nil
}

// ReadFeed implements persistence.Journal.
func (s *Store) ReadFeed(ctx context.Context, group uint32, after uint64, limit int) ([]persistence.FeedEvent, error) {
	const op = "read feed"
	if err := persistence.ValidateFeed(group, s.groups, limit); err != nil {
		return nil, err
	}
	fail := func(err error) ([]persistence.FeedEvent, error) {
		return nil, &persistence.Error{Op: op, Group: group, Err: err}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fail(err)
	}
	// Read the watermark before opening the iterator: every position at or
	// below it was durable and visible before this load.
	visible := s.feeds[group].visible.Load()
	if after >= visible {
		return nil, nil
	}
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: feedKey(group, after+1), UpperBound: feedKey(group, visible+1)})
	if err != nil {
		return fail(err)
	}
	defer it.Close()
	out := make([]persistence.FeedEvent, 0, min(limit, eventsPreallocMax))
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		if len(out)%ctxCheckEvery == ctxCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
		}
		_, pos, ok := parseFeedKey(it.Key())
		if !ok {
			return fail(fmt.Errorf("%w: feed key %x", errCorrupt, it.Key()))
		}
		e, err := s.decode(it.Value(), group)
		if err != nil {
			return fail(err)
		}
		out = append(out, persistence.FeedEvent{Position: pos, Event: e})
	}
	if err := it.Error(); err != nil {
		return fail(err)
	}
	return out, nil
}

// SaveSnapshot implements persistence.Journal. The write is synced like an
// append: a snapshot is a cache, but one that vanished after it was
// acknowledged would surprise whoever decided to stop replaying.
func (s *Store) SaveSnapshot(ctx context.Context, snap persistence.Snapshot) error {
	const op = "save snapshot"
	if err := snap.Validate(); err != nil {
		return err
	}
	fail := func(err error) error {
		return &persistence.Error{Op: op, Stream: snap.Stream, Err: err}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fail(err)
	}
	l := s.snaps.lock(snap.Stream)
	defer s.snaps.unlock(snap.Stream, l)
	stored, found := s.snapVersions.get(snap.Stream)
	if !found {
		var err error
		if stored, _, found, err = s.loadSnapshot(snap.Stream, false); err != nil {
			return fail(err)
		}
	}
	if found && stored > snap.Version {
		return nil
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(snap.Data)), snap.Version)
	v = append(v, snap.Data...)
	if err := s.db.Set(snapshotKey(snap.Stream), v, cpebble.Sync); err != nil {
		return fail(err)
	}
	s.snapVersions.set(snap.Stream, snap.Version)
	return nil
}

// LoadSnapshot implements persistence.Journal.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (persistence.Snapshot, bool, error) {
	const op = "load snapshot"
	if err := persistence.ValidateStream(op, stream); err != nil {
		return persistence.Snapshot{}, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return persistence.Snapshot{}, false, &persistence.Error{Op: op, Stream: stream, Err: err}
	}
	// Under the stream's lock, so that what it remembers is what is stored
	// (a save cannot land between the read and snapVersions.set).
	l := s.snaps.lock(stream)
	defer s.snaps.unlock(stream, l)
	version, data, found, err := s.loadSnapshot(stream, true)
	if err != nil || !found {
		if err != nil {
			err = &persistence.Error{Op: op, Stream: stream, Err: err}
		}
		return persistence.Snapshot{}, false, err
	}
	s.snapVersions.set(stream, version)
	return persistence.Snapshot{Stream: stream, Version: version, Data: data}, true, nil
}

func (s *Store) loadSnapshot(stream string, withData bool) (version uint64, data []byte, found bool, err error) {
	v, closer, err := s.db.Get(snapshotKey(stream))
	if errors.Is(err, cpebble.ErrNotFound) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, err
	}
	defer closer.Close()
	if len(v) < 8 {
		return 0, nil, false, fmt.Errorf("%w: snapshot of %d bytes", errCorrupt, len(v))
	}
	if withData {
		data = append([]byte{}, v[8:]...)
	}
	return binary.BigEndian.Uint64(v), data, true, nil
}

// Close implements persistence.Journal. It waits for the operations in
// flight; a second Close returns nil.
// A nil Store (a failed Open's, held in a Journal) closes as nothing:
// cleanup after a failed start must not panic over the error it reports.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.commits.stop()
	defer s.cache.Unref()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebble journal: close: %w", err)
	}
	return nil
}

// BlockCache is the journal's block cache, for another store of the same
// node to share (the history read model, history.Options.Cache): one
// budget, --journal-cache, spent on whichever store's blocks are hot.
// Valid until Close; a store opened with it holds its own reference.
func (s *Store) BlockCache() *cpebble.Cache { return s.cache }

// DiskSpaceBytes is the space the database takes on disk (WAL, sstables,
// manifests), for benchmarks and metrics.
func (s *Store) DiskSpaceBytes() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0
	}
	return s.db.Metrics().DiskSpaceUsage()
}

// pebbleLogger routes Pebble's log lines to slog; Pebble's Info lines
// (compactions, WAL rotation) go to Debug.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble when it cannot go on (a disk stall, a corrupt
// manifest); Pebble expects it not to return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble", "fatal", true)
	panic("pebble: " + msg)
}
