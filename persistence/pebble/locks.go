package pebble

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// streamLocks serialises appends to one stream (the version check and the
// write must not interleave with another append to the same stream) without
// serialising appends to different streams: a lock is held across a WAL
// sync, so striping streams over a fixed set of locks would make unrelated
// pots wait for each other's syncs.
//
// It also tells readers which streams have an append in flight, because
// Pebble makes a batch visible before its WAL sync ends (see commit.go in
// Pebble: "waiting for the WAL sync after ratcheting the visible sequence
// number allows another goroutine to read committed data before the WAL has
// synced").
//
// And it caches stream heads: the store is the only writer of its
// directory, so a head recorded under the stream's lock after a durable
// append stays true until the next append, which takes the same lock.
type streamLocks struct {
	seed     maphash.Seed
	headsMax int // per shard
	shards   [streamLockShards]streamLockShard
}

// streamLockShards spreads the map's mutex: 64 shards keep 256 concurrent
// appenders at about 4 per shard, and each shard's critical section is a map
// operation.
const streamLockShards = 64

type streamLockShard struct {
	mu    sync.Mutex
	m     map[string]*streamLock // mu guards m and every entry's refs and pendingFrom
	heads map[string]streamHead  // guarded by mu
}

// streamHead is a stream's version and group.
type streamHead struct {
	version uint64
	group   uint32
}

type streamLock struct {
	mu sync.Mutex // held by the one append working on the stream
	// refs counts the appends holding or waiting for mu; the entry leaves the
	// map when it drops to 0. Guarded by the shard's mu.
	refs int
	// pendingFrom is the first version of an append whose batch may be
	// visible in Pebble but not yet synced (0: none). Readers return only
	// versions below it. Guarded by the shard's mu.
	pendingFrom uint64
}

// newStreamLocks makes the lock table, caching up to headsMax heads.
func newStreamLocks(headsMax int) *streamLocks {
	l := &streamLocks{seed: maphash.MakeSeed(), headsMax: max(1, headsMax/streamLockShards)}
	for i := range l.shards {
		l.shards[i].m = make(map[string]*streamLock)
		l.shards[i].heads = make(map[string]streamHead)
	}
	return l
}

func (l *streamLocks) shard(stream string) *streamLockShard {
	return &l.shards[maphash.String(l.seed, stream)%streamLockShards]
}

// lock takes the stream's lock; unlock releases it.
func (l *streamLocks) lock(stream string) *streamLock {
	sh := l.shard(stream)
	sh.mu.Lock()
	e := sh.m[stream]
	if e == nil {
		e = &streamLock{}
		sh.m[stream] = e
	}
	e.refs++
	sh.mu.Unlock()
	e.mu.Lock()
	return e
}

// setPending marks (from > 0) or clears (from = 0) an append in flight on a
// stream whose lock the caller holds.
func (l *streamLocks) setPending(stream string, e *streamLock, from uint64) {
	sh := l.shard(stream)
	sh.mu.Lock()
	e.pendingFrom = from
	sh.mu.Unlock()
}

// cachedHead returns the cached head of a stream whose lock the caller
// holds.
func (l *streamLocks) cachedHead(stream string) (streamHead, bool) {
	sh := l.shard(stream)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h, ok := sh.heads[stream]
	return h, ok
}

// setHead caches the head of a stream whose lock the caller holds, and
// clears its pending mark: the append that made the head is durable. When
// the shard's cache is full an arbitrary entry goes (Go's map order), most
// likely a pot that went quiet; a miss costs one index seek.
func (l *streamLocks) setHead(stream string, e *streamLock, h streamHead) {
	sh := l.shard(stream)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e.pendingFrom = 0
	if _, ok := sh.heads[stream]; !ok && len(sh.heads) >= l.headsMax {
		for k := range sh.heads {
			delete(sh.heads, k)
			break
		}
	}
	sh.heads[stream] = h
}

func (l *streamLocks) unlock(stream string, e *streamLock) {
	e.mu.Unlock()
	sh := l.shard(stream)
	sh.mu.Lock()
	e.refs--
	if e.refs == 0 {
		delete(sh.m, stream)
	}
	sh.mu.Unlock()
}

// pendingFrom returns the first version that a reader must not return yet (0:
// no limit). A reader calls it after it opened its Pebble iterator: if the
// iterator can see a batch that is not synced yet, the append that wrote it
// registered itself before writing it, so this call sees the registration.
func (l *streamLocks) pendingFrom(stream string) uint64 {
	sh := l.shard(stream)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[stream]; e != nil {
		return e.pendingFrom
	}
	return 0
}

// groupFeed assigns a group's feed positions and says up to where the feed
// may be read.
//
// Appends to different streams of one group commit concurrently through
// Pebble's pipeline, so their batches can become durable in another order
// than the one their positions were assigned in. A consumer that read
// position 11 while position 10 was still syncing would checkpoint 11 and
// never see 10. So the feed is readable only up to visible: every position
// at or below it belongs to an append that is durable, or that failed and
// left a gap that nothing will ever fill.
type groupFeed struct {
	mu sync.Mutex
	// next is the next position to assign. Guarded by mu.
	next uint64
	// inflight holds the last position of every append that took positions
	// and has not finished, in assignment order. Guarded by mu.
	inflight []inflightAppend
	// visible is the readable limit; written under mu, read without it.
	visible atomic.Uint64
}

type inflightAppend struct {
	last uint64
	done bool
}

// assign takes n positions and returns the first.
func (g *groupFeed) assign(n int) uint64 {
	g.mu.Lock()
	first := g.next
	g.next += uint64(n)
	g.inflight = append(g.inflight, inflightAppend{last: g.next - 1})
	g.mu.Unlock()
	return first
}

// settle records that the append whose last position is last is durable (or
// failed without writing anything), and moves visible over every settled
// append at the front of the queue.
func (g *groupFeed) settle(last uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.inflight {
		if g.inflight[i].last == last {
			g.inflight[i].done = true
			break
		}
	}
	n := 0
	for n < len(g.inflight) && g.inflight[n].done {
		n++
	}
	if n == 0 {
		return
	}
	g.visible.Store(g.inflight[n-1].last)
	// Shift rather than reslice so the backing array is reused instead of
	// growing forever; the queue is at most as long as the appends in flight.
	g.inflight = g.inflight[:copy(g.inflight, g.inflight[n:])]
}
