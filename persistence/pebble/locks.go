package pebble

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// streamLocks serialises the snapshot saves and loads of one stream
// (reading the stored version and writing a newer one must not interleave,
// nor a load's remembering of what it read with a save) without
// serialising those of different streams.
type streamLocks struct {
	seed   maphash.Seed
	shards [streamShards]streamLockShard
}

// streamShards spreads a per-stream map's mutex: 64 shards keep 256
// concurrent callers at about 4 per shard, and each shard's critical section
// is a map operation.
const streamShards = 64

type streamLockShard struct {
	mu sync.Mutex
	m  map[string]*streamLock // mu guards m and every entry's refs
}

type streamLock struct {
	mu sync.Mutex // held by the one caller working on the stream
	// refs counts the callers holding or waiting for mu; the entry leaves
	// the map when it drops to 0. Guarded by the shard's mu.
	refs int
}

func newStreamLocks() *streamLocks {
	l := &streamLocks{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = make(map[string]*streamLock)
	}
	return l
}

// lock takes the stream's lock; unlock releases it.
func (l *streamLocks) lock(stream string) *streamLock {
	sh := &l.shards[maphash.String(l.seed, stream)%streamShards]
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

func (l *streamLocks) unlock(stream string, e *streamLock) {
	e.mu.Unlock()
	sh := &l.shards[maphash.String(l.seed, stream)%streamShards]
	sh.mu.Lock()
	e.refs--
	if e.refs == 0 {
		delete(sh.m, stream)
	}
	sh.mu.Unlock()
}

// pendingStreams tells readers which versions of a stream are written but
// not yet synced, because Pebble makes a batch visible before its WAL sync
// ends (see commit.go in Pebble: "waiting for the WAL sync after ratcheting
// the visible sequence number allows another goroutine to read committed
// data before the WAL has synced"). The committer marks an append before it
// applies the batch; the syncer settles it after the sync.
type pendingStreams struct {
	seed   maphash.Seed
	shards [streamShards]pendingShard
}

type pendingShard struct {
	mu sync.Mutex
	m  map[string]pendingRange
}

// pendingRange: versions from … upTo of a stream are not durable yet.
type pendingRange struct{ from, upTo uint64 }

func newPendingStreams() *pendingStreams {
	p := &pendingStreams{seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].m = make(map[string]pendingRange)
	}
	return p
}

func (p *pendingStreams) shard(stream string) *pendingShard {
	return &p.shards[maphash.String(p.seed, stream)%streamShards]
}

// mark records versions from … upTo as written and not synced. Appends of
// one stream are marked in version order.
func (p *pendingStreams) mark(stream string, from, upTo uint64) {
	sh := p.shard(stream)
	sh.mu.Lock()
	if r, ok := sh.m[stream]; ok {
		r.upTo = upTo
		sh.m[stream] = r
	} else {
		sh.m[stream] = pendingRange{from: from, upTo: upTo}
	}
	sh.mu.Unlock()
}

// settle records every version up to upTo as durable (syncs end in order).
func (p *pendingStreams) settle(stream string, upTo uint64) {
	sh := p.shard(stream)
	sh.mu.Lock()
	if r, ok := sh.m[stream]; ok {
		if r.upTo <= upTo {
			delete(sh.m, stream)
		} else {
			r.from = upTo + 1
			sh.m[stream] = r
		}
	}
	sh.mu.Unlock()
}

// abandon forgets versions from on: they were marked, then never written.
func (p *pendingStreams) abandon(stream string, from uint64) {
	sh := p.shard(stream)
	sh.mu.Lock()
	if r, ok := sh.m[stream]; ok {
		if r.from >= from {
			delete(sh.m, stream)
		} else {
			r.upTo = min(r.upTo, from-1)
			sh.m[stream] = r
		}
	}
	sh.mu.Unlock()
}

// pendingFrom returns the first version that a reader must not return yet
// (0: no limit). A reader calls it after it opened its Pebble iterator: if
// the iterator can see a batch that is not synced yet, the committer marked
// it before applying it, so this call sees the mark.
func (p *pendingStreams) pendingFrom(stream string) uint64 {
	sh := p.shard(stream)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[stream].from
}

// streamHead is a stream's version and group.
type streamHead struct {
	version uint64
	group   uint32
}

// groupFeed says up to where a group's feed may be read: every position at
// or below visible belongs to an append that is durable, or to a round that
// failed and left a gap nothing will ever fill. The committer assigns
// positions in commit order and the syncer moves visible after each round's
// sync, in order, so a consumer that checkpoints the last position it read
// misses nothing.
type groupFeed struct {
	visible atomic.Uint64
}

// snapshotVersions remembers the version of the snapshot stored for the
// streams whose snapshot this store read or wrote lately, so that a save
// compares with it instead of reading the stored one first: the save at a
// pot's passivation follows the read at its activation, and that read cost
// as much as the recovery's own (a point read that misses the block cache
// in a store larger than it). The store is the only writer of snapshots
// (Pebble locks the directory), so a remembered version is the stored one;
// a stream not remembered is read, as before.
type snapshotVersions struct {
	seed     maphash.Seed
	shardMax int // entries in one shard before an arbitrary one goes
	shards   [streamShards]snapshotVersionShard
}

type snapshotVersionShard struct {
	mu sync.Mutex
	m  map[string]uint64 // mu guards m
}

// newSnapshotVersions remembers about entries streams.
func newSnapshotVersions(entries int) *snapshotVersions {
	v := &snapshotVersions{seed: maphash.MakeSeed(), shardMax: max(entries/streamShards, 1)}
	for i := range v.shards {
		v.shards[i].m = make(map[string]uint64)
	}
	return v
}

func (v *snapshotVersions) shard(stream string) *snapshotVersionShard {
	return &v.shards[maphash.String(v.seed, stream)%streamShards]
}

// get returns the stream's stored snapshot version, if remembered.
func (v *snapshotVersions) get(stream string) (uint64, bool) {
	sh := v.shard(stream)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	version, ok := sh.m[stream]
	return version, ok
}

// set remembers the stream's stored snapshot version. Callers hold the
// stream's lock (streamLocks), under which they read or wrote it.
func (v *snapshotVersions) set(stream string, version uint64) {
	sh := v.shard(stream)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[stream]; !ok && len(sh.m) >= v.shardMax {
		for k := range sh.m {
			delete(sh.m, k)
			break
		}
	}
	sh.m[stream] = version
}
