// Package history is the pots' history read model: every order a member
// ever placed as it is now (or ended), the member's statement, and every
// idempotency key the member's pot ever recorded, projected from the
// journal's feed into a Pebble database of the node's own.
//
// It exists so that a pot's state can keep only what decisions need: once
// a pot forgets its terminal orders, trades and movements, the member's
// order history, contract notes and statement come from here. The journal
// stays the truth: this store is a cache of it, droppable and rebuilt from
// the journal at any time (Rebuild), and writes are not synced (after a
// crash it resumes from its checkpoints, which are written in the same
// batch as the state they cover, so a checkpoint is never ahead of its
// state).
//
// Projection is exactly once and deterministic: per group, the feed is
// applied page by page from the stored checkpoint, each page in one batch
// with the new checkpoint; per member, an event at or below the member's
// projected version is skipped (a page read twice) and one past the next
// version is an error (a gap). The same code projects live, on catching up
// and on rebuilding, so a rebuilt store is byte for byte the live one.
package history

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/pebbleopts"
)

const (
	// cacheBytesDefault: the queries read one member's keys at a time and
	// the projection its members' records; 16 MiB holds the busy members
	// of a small store. A node shares its Pebble journal's cache instead
	// (Options.Cache).
	cacheBytesDefault = 16 << 20
	// replicasCachedDefault: a replica without its closed history is a few
	// KB decoded, so 4,096 take ~20 MB; consecutive pages of a group's
	// feed touch the same busy pots, which are then not decoded again.
	replicasCachedDefault = 4096
	// feedPageEvents is the events read from the feed at once and applied
	// in one batch: a page of pot events is ~300 KB of journal and writes
	// a few hundred KB, a batch Pebble commits at once.
	feedPageEvents = 1000
	// pageEntriesMax bounds a query's limit: a page is decoded in memory
	// (the API's pages are at most 200).
	pageEntriesMax = 1000
)

// Options configures a Store. Open calls EnsureDefaults.
type Options struct {
	// CacheBytes is Pebble's block cache. Default 16 MiB. Ignored if
	// Cache is set.
	CacheBytes int64
	// Cache, if set, is a block cache shared with another store (a node
	// shares its Pebble journal's, persistence/pebble.Store.BlockCache).
	Cache *pebble.Cache
	// Logger receives Pebble's lines (Info at Debug level) and the
	// store's own. Default: a logger that discards.
	Logger *slog.Logger
	// Catalogue names assets and writes units and prices in statement
	// descriptions. Default: domain.DefaultCatalogue(); it must be the
	// platform's, or a rebuild words the statement differently.
	Catalogue *domain.Catalogue
	// ReplicasCached bounds the decoded replicas kept between feed pages.
	// Default 4,096; negative: none (every page decodes its members).
	ReplicasCached int
	// RenderClosedOrder, if set, renders each order as it closes, and
	// Orders returns closed orders as those views (codec.ListedOrder). The
	// platform sets it to the API's JSON of the order; like the catalogue,
	// it must be the same for every build of a store, or a rebuild renders
	// old orders otherwise than the live store did. Default: none, every
	// order is decoded.
	RenderClosedOrder func(b []byte, o *domain.Order) []byte
}

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.CacheBytes == 0 {
		o.CacheBytes = cacheBytesDefault
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Catalogue == nil {
		o.Catalogue = domain.DefaultCatalogue()
	}
	if o.ReplicasCached == 0 {
		o.ReplicasCached = replicasCachedDefault
	}
	return o
}

// Validate reports every field out of range, with its value.
func (o *Options) Validate() error {
	if o.CacheBytes < 0 {
		return fmt.Errorf("history: invalid options: cache bytes %d is negative", o.CacheBytes)
	}
	return nil
}

// Store is the read model on its Pebble database. It holds the database's
// directory lock: one Store per directory. Its methods are safe for
// concurrent use.
type Store struct {
	db       *pebble.DB
	log      *slog.Logger
	cat      *domain.Catalogue
	render   func(b []byte, o *domain.Order) []byte
	replicas *replicaCache

	// groupLocks serialise the projection of each group (catchUp).
	groupLocksMu sync.Mutex
	groupLocks   map[uint32]*sync.Mutex

	// mu is read-held by every operation and write-held by Close, so that
	// Close waits for the operations in flight and later ones see closed.
	mu     sync.RWMutex
	closed bool // guarded by mu
}

// Sentinel errors, checked with errors.Is.
var (
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("history: store closed")
	// ErrInvalid: a query's argument is out of range (a limit, a cursor
	// that Statement did not make).
	ErrInvalid = errors.New("history: invalid argument")
	// ErrLayout: the directory holds a store of another key layout (an
	// older build's), to be removed and rebuilt from the journal.
	ErrLayout = errors.New("history: another key layout")
)

// memTableBytes is the history store's memtable size; Pebble keeps up to
// two before it stalls writes.
const memTableBytes = 64 << 20

// Open opens the read model in dir, creating it if dir holds none. A store
// of another key layout is refused: remove the directory and rebuild.
func Open(dir string, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cache := opts.Cache
	if cache == nil {
		cache = pebble.NewCache(opts.CacheBytes)
		defer cache.Unref() // the DB holds its own reference
	}
	popts := &pebble.Options{Cache: cache, Logger: pebbleLogger{opts.Logger}}
	// The projection rewrites each touched member's record on every page:
	// with Pebble's 4 MiB memtables and 64 MB Lbase it flushed and
	// compacted ~8 files a second at 200,000 members, the growing share of
	// a dealing day's CPU (docs/performance.md, "200,000 members for 30
	// days in the million-pot regime"). And it reads that record back
	// (loadMember) for every member a page touches: the filters spare
	// those reads the tables without it.
	pebbleopts.Apply(popts, memTableBytes, pebbleopts.BloomBitsPerKeyDefault)
	db, err := pebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("history: open %s: %w", dir, err)
	}
	if err := checkLayout(db); err != nil {
		return nil, errors.Join(fmt.Errorf("history: open %s: %w", dir, err), db.Close())
	}
	s := &Store{db: db, log: opts.Logger, cat: opts.Catalogue, render: opts.RenderClosedOrder, replicas: newReplicaCache(opts.ReplicasCached),
		groupLocks: map[uint32]*sync.Mutex{}}
	s.log.Debug("history opened", "dir", dir)
	return s, nil
}

// checkLayout stores the layout version in an empty database and refuses
// a database of another layout.
func checkLayout(db *pebble.DB) error {
	v, closer, err := db.Get(keyLayout)
	if err == nil {
		defer closer.Close()
		if len(v) != 1 || v[0] != LayoutVersion {
			return fmt.Errorf("%w: %v, this build reads %d: remove the directory and rebuild it from the journal", ErrLayout, v, LayoutVersion)
		}
		return nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	it, err := db.NewIter(nil)
	if err != nil {
		return err
	}
	nonEmpty := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if nonEmpty {
		return errors.New("the directory holds a Pebble database that is not a history read model")
	}
	return db.Set(keyLayout, []byte{LayoutVersion}, pebble.Sync)
}

// Close closes the database once the operations in flight end.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("history: close: %w", err)
	}
	return nil
}

// open read-locks the store for an operation; the caller runs the returned
// function when done.
func (s *Store) open() (func(), error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	return s.mu.RUnlock, nil
}

// get is the value of key, copied; found is false when there is none.
func (s *Store) get(key []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

// Order is member's order orderID as it is now, or as it ended.
func (s *Store) Order(member, orderID string) (*domain.Order, bool, error) {
	done, err := s.open()
	if err != nil {
		return nil, false, err
	}
	defer done()
	seq, ok := domain.IDNumber(member, orderID)
	if !ok {
		return nil, false, nil // not an id the member's pot hands out
	}
	v, found, err := s.get(orderKey(member, seq))
	if err != nil || !found {
		return nil, false, wrapQuery(err, "order", member)
	}
	o, err := codec.DecodeOrder(v)
	if err != nil {
		return nil, false, wrapQuery(err, "order", member)
	}
	if o.ID != orderID {
		return nil, false, nil // the same number spelt otherwise ("M1-07")
	}
	return o, true, nil
}

// Orders lists member's orders newest first (by the number of their ids,
// "<member>-<n>"), those numbered below beforeSeq (0: from the newest),
// each passed to keep (nil: keep every one); it returns at most limit kept
// orders and whether more may follow (more orders exist below the last one
// returned; keep may refuse all of them). It reads the member's order keys
// backwards from beforeSeq and stops at limit: a page costs the orders it
// reads, however many the member has; and a closed order that was rendered
// costs a copy of its view, not a decoding.
func (s *Store) Orders(member string, beforeSeq uint64, limit int, keep func(codec.ListedOrder) bool) ([]codec.ListedOrder, bool, error) {
	if err := checkLimit(limit); err != nil {
		return nil, false, err
	}
	done, err := s.open()
	if err != nil {
		return nil, false, err
	}
	defer done()
	prefix := memberPrefix(kindOrder, member)
	upper := prefixEnd(prefix)
	if beforeSeq != 0 {
		upper = orderKey(member, beforeSeq)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return nil, false, wrapQuery(err, "orders", member)
	}
	var out []codec.ListedOrder
	more := false
	for valid := it.Last(); valid; valid = it.Prev() {
		if len(out) == limit {
			more = true
			break
		}
		key := it.Key()
		id := member + "-" + strconv.FormatUint(binary.BigEndian.Uint64(key[len(key)-8:]), 10)
		l, err := codec.DecodeListedOrder(it.Value(), id)
		if err != nil {
			return nil, false, wrapQuery(errors.Join(err, it.Close()), "orders", member)
		}
		if keep == nil || keep(l) {
			out = append(out, l)
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, false, wrapQuery(err, "orders", member)
	}
	return out, more, nil
}

// Statement lists member's statement entries with At in [from, to) (a zero
// bound is open), oldest first, starting after cursor ("" from the first),
// at most limit of them; it returns the cursor of the next page, "" when
// there is none. Entries are ordered by time, then by stream version.
func (s *Store) Statement(member string, from, to time.Time, cursor string, limit int) ([]domain.StatementEntry, string, error) {
	if err := checkLimit(limit); err != nil {
		return nil, "", err
	}
	prefix := memberPrefix(kindStatement, member)
	lower, upper := prefix, prefixEnd(prefix)
	if !from.IsZero() {
		lower = statementTimeKey(member, from)
	}
	if !to.IsZero() {
		upper = statementTimeKey(member, to)
	}
	if cursor != "" {
		last, err := decodeCursor(member, cursor)
		if err != nil {
			return nil, "", err
		}
		if after := append(last, 0); string(after) > string(lower) {
			lower = after
		}
	}
	done, err := s.open()
	if err != nil {
		return nil, "", err
	}
	defer done()
	if string(lower) >= string(upper) {
		return nil, "", nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, "", wrapQuery(err, "statement", member)
	}
	var out []domain.StatementEntry
	next := ""
	var lastKey []byte
	for valid := it.First(); valid; valid = it.Next() {
		if len(out) == limit {
			next = encodeCursor(lastKey)
			break
		}
		e, err := codec.DecodeStatementEntry(it.Value())
		if err != nil {
			return nil, "", wrapQuery(errors.Join(err, it.Close()), "statement", member)
		}
		out = append(out, e)
		lastKey = append(lastKey[:0], it.Key()...)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, "", wrapQuery(err, "statement", member)
	}
	return out, next, nil
}

// Request is the latest record of idempotency key that member's pot
// recorded, however long ago: a pot forgets its keys after
// domain.RequestRetention and asks this to refuse an old key rather than
// apply it twice.
func (s *Store) Request(member, key string) (domain.RequestRecord, bool, error) {
	done, err := s.open()
	if err != nil {
		return domain.RequestRecord{}, false, err
	}
	defer done()
	v, found, err := s.get(requestKey(member, key))
	if err != nil || !found {
		return domain.RequestRecord{}, false, wrapQuery(err, "request", member)
	}
	rec, err := codec.DecodeRequestRecord(v)
	if err != nil {
		return domain.RequestRecord{}, false, wrapQuery(err, "request", member)
	}
	return rec, true, nil
}

// Projected is member's stream version projected and the commit time of
// its last projected event (0 and the zero time for a member not seen).
func (s *Store) Projected(member string) (version uint64, at time.Time, err error) {
	done, err := s.open()
	if err != nil {
		return 0, time.Time{}, err
	}
	defer done()
	v, found, err := s.get(memberKey(member))
	if err != nil || !found {
		return 0, time.Time{}, wrapQuery(err, "projected", member)
	}
	m, err := codec.DecodeProjectedPot(v, false)
	if err != nil {
		return 0, time.Time{}, wrapQuery(err, "projected", member)
	}
	return m.Version, m.At, nil
}

func checkLimit(limit int) error {
	if limit <= 0 || limit > pageEntriesMax {
		return fmt.Errorf("%w: limit %d outside [1, %d]", ErrInvalid, limit, pageEntriesMax)
	}
	return nil
}

// wrapQuery gives a query's error its context (nil stays nil).
func wrapQuery(err error, query, member string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("history: %s of %s: %w", query, member, err)
}

// pebbleLogger routes Pebble's log lines to slog; Pebble's Info lines
// (compactions, WAL rotation) go to Debug. (persistence/pebble has its
// own: this package does not link the journal's backend.)
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "history-pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "history-pebble")
}

// Fatalf is called by Pebble when it cannot go on; Pebble expects it not
// to return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "history-pebble", "fatal", true)
	panic("pebble: " + msg)
}
