// Package pebbleopts holds the Pebble options the platform's two stores
// share: the journal (persistence/pebble) and the history read model
// (history). Both are written all over their key space by every pot and
// read a pot or a member at a time, so they are tuned alike, here.
package pebbleopts

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// BloomBitsPerKeyDefault sizes the tables' Bloom filters: 10 bits a key,
// a false positive 1% of the time.
const BloomBitsPerKeyDefault = 10

// lbaseMaxBytes is Lbase's size for memtables of memTableBytes: what L0
// compacts into it at once (4 memtables), at least Pebble's 64 MB. With
// Pebble's 64 MB against 64 MiB memtables, every compaction from L0
// rewrote Lbase whole, and more levels deep as a store grew.
func lbaseMaxBytes(memTableBytes uint64) int64 {
	return max(int64(4*memTableBytes), 64<<20)
}

// Apply sets the shared options on o: memtables of memTableBytes, Lbase to
// match, and Bloom filters of bloomBitsPerKey (0 or less: none).
//
// Why filters: a point read (a pot's snapshot, a member's record) walks
// down the levels, and without a filter reads a data block of every table
// whose key range spans the key, holding it or not. Those keys are spread
// over the whole key space, so nearly every table of a level spans every
// key, and each level a store grows into adds block reads, mostly missing
// the block cache, to every read: a pot's recovery from a journal with 8
// times the history took 1.65 times as long without filters, 1.22 with
// them (BenchmarkRecoverCold; docs/performance.md). A filter answers "not
// here" for 99% of those tables from a block the cache keeps. Range scans
// (the feed, a stream's index, a member's orders) do not use filters.
// Tables written before filters were set have none, until compacted.
func Apply(o *pebble.Options, memTableBytes uint64, bloomBitsPerKey int) {
	o.MemTableSize = memTableBytes
	o.LBaseMaxBytes = lbaseMaxBytes(memTableBytes)
	o.FormatMajorVersion = pebble.FormatNewest
	if bloomBitsPerKey > 0 {
		// Later levels inherit L0's filter.
		o.Levels[0].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
	}
}
