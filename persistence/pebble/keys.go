package pebble

import (
	"encoding/binary"
)

// Key layout. One byte of prefix per kind of key, so that each kind is its
// own range:
//
//	"c" name                              → config value (groups, layout)
//	"f" group(4, BE) position(8, BE)      → event (the feed; the only copy of an event)
//	"s" stream 0x00 lastVersion(8, BE)    → group(4, BE) firstPosition(8, BE) count(2, BE)
//	"p" stream                            → version(8, BE) data (a stream's snapshot)
//
// A group's feed is one range scan, in position order. A stream's index has
// one entry per append, keyed by the append's last version: a read from
// version v seeks to the first entry at or above v, and each entry names a
// run of consecutive feed positions (the events of one append get
// consecutive positions), so reading a stream is one seek per append. The
// last index entry is the stream's head (version and group); the store
// caches heads in memory, since it is the only writer (Pebble locks the
// directory). Events are stored once, in the feed, because every consumer
// reads the feed sequentially while a stream is read once per activation,
// usually just its tail after a snapshot. The 0x00 separator sorts "pot/1"
// before "pot/10" (no stream name holds 0x00). Numbers are big-endian so that
// byte order is numeric order; a group's feed keys are written in
// increasing order, which keeps compactions cheap.
const (
	prefixConfig   = 'c'
	prefixFeed     = 'f'
	prefixIndex    = 's'
	prefixSnapshot = 'p'
)

// Config keys.
var (
	keyGroups = []byte("cgroups")
	keyLayout = []byte("clayout")
)

// layoutVersion is stored at creation; a store with another layout is refused
// instead of misread.
const layoutVersion = 1

func feedKey(group uint32, position uint64) []byte {
	k := make([]byte, 13)
	k[0] = prefixFeed
	binary.BigEndian.PutUint32(k[1:], group)
	binary.BigEndian.PutUint64(k[5:], position)
	return k
}

// feedGroupUpper is the first key after every feed key of group.
func feedGroupUpper(group uint32) []byte {
	if group == ^uint32(0) {
		return []byte{prefixFeed + 1}
	}
	k := make([]byte, 5)
	k[0] = prefixFeed
	binary.BigEndian.PutUint32(k[1:], group+1)
	return k
}

func parseFeedKey(k []byte) (group uint32, position uint64, ok bool) {
	if len(k) != 13 || k[0] != prefixFeed {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(k[1:]), binary.BigEndian.Uint64(k[5:]), true
}

func appendIndexKey(dst []byte, stream string, version uint64) []byte {
	dst = append(dst, prefixIndex)
	dst = append(dst, stream...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, version)
}

func indexKey(stream string, version uint64) []byte {
	return appendIndexKey(make([]byte, 0, 1+len(stream)+1+8), stream, version)
}

// indexUpper is the first key after every index key of stream.
func indexUpper(stream string) []byte {
	k := make([]byte, 0, 1+len(stream)+1)
	k = append(k, prefixIndex)
	k = append(k, stream...)
	return append(k, 1)
}

func parseIndexKey(k []byte, stream string) (lastVersion uint64, ok bool) {
	if len(k) != 1+len(stream)+1+8 || k[0] != prefixIndex || string(k[1:1+len(stream)]) != stream || k[1+len(stream)] != 0 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(k)-8:]), true
}

// indexEntry describes one append: its events are at positions
// firstPos … firstPos+count-1 of group's feed.
type indexEntry struct {
	group    uint32
	firstPos uint64
	count    uint16
}

func appendIndexValue(dst []byte, e indexEntry) []byte {
	dst = binary.BigEndian.AppendUint32(dst, e.group)
	dst = binary.BigEndian.AppendUint64(dst, e.firstPos)
	return binary.BigEndian.AppendUint16(dst, e.count)
}

func parseIndexValue(v []byte) (indexEntry, bool) {
	if len(v) != 14 {
		return indexEntry{}, false
	}
	e := indexEntry{group: binary.BigEndian.Uint32(v), firstPos: binary.BigEndian.Uint64(v[4:]), count: binary.BigEndian.Uint16(v[12:])}
	return e, e.count > 0
}

func appendFeedKey(dst []byte, group uint32, position uint64) []byte {
	dst = append(dst, prefixFeed)
	dst = binary.BigEndian.AppendUint32(dst, group)
	return binary.BigEndian.AppendUint64(dst, position)
}

func snapshotKey(stream string) []byte {
	return append([]byte{prefixSnapshot}, stream...)
}
