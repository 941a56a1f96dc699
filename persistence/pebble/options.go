package pebble

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/acme/mastertrust/internal/pebbleopts"
	"github.com/acme/mastertrust/persistence"
)

// DefaultGroups is the number of groups of a journal created with
// Options.Groups = 0: 64 (docs/architecture.md, "The journal is the
// outbox").
const DefaultGroups = 64

const (
	// walMinSyncIntervalMax bounds Options.WALMinSyncInterval: every
	// acknowledged append may wait this long for its sync, so more than a
	// few milliseconds would show up in every pot's reply time.
	walMinSyncIntervalMax = 10 * time.Millisecond
	// cacheBytesDefault is Pebble's block cache. Reads are a stream's tail
	// after a snapshot and the feed's recent past: 64 MiB holds both for a
	// busy node.
	cacheBytesDefault = 64 << 20
	// memTableBytesDefault: a 64 MiB memtable absorbs ~200K pot events
	// before a flush; Pebble's 4 MiB default flushes (and compacts) 16
	// times as often under the append load this journal sees.
	memTableBytesDefault = 64 << 20
	// headCacheEntriesDefault: a cached head is ~100 bytes with its map
	// entry, so 100K heads take ~10 MB.
	headCacheEntriesDefault = 100_000
	// memTableBytesMax: Pebble refuses memtables of 4 GiB or more; a
	// memtable is also held in memory (MemTableStopWritesThreshold of them).
	memTableBytesMax = 1 << 30
)

// Options configures a Store. The zero value is ready to use: Open calls
// EnsureDefaults.
type Options struct {
	// FS is the file system the store lives on. Default: the operating
	// system's (vfs.Default). Tests use vfs.NewMem() for speed and
	// vfs.NewCrashableMem() to simulate a power loss.
	FS vfs.FS

	// Groups is the number of groups, fixed when the journal is created and
	// stored with it. Zero means: the stored number when reopening, and
	// DefaultGroups when creating. Reopening with another non-zero number is
	// an error. At most persistence.GroupsMax.
	Groups uint32

	// WALMinSyncInterval delays each WAL sync until this long after the
	// previous one, so that more appends share one sync. Default 0: sync as
	// soon as the previous sync ends, which already group-commits every
	// append that arrived during it (docs/performance.md has the
	// measurements: a delay does not raise throughput on this machine's
	// disk, and adds its length to every append's latency). At most 10ms.
	WALMinSyncInterval time.Duration

	// CacheBytes is the size of Pebble's block cache. Default 64 MiB. The
	// node's history read model shares it (Store.BlockCache).
	CacheBytes int64

	// MemTableBytes is the size of one memtable. Default 64 MiB; at most
	// 1 GiB. Pebble keeps up to 4 memtables before it stalls writes.
	MemTableBytes uint64

	// HeadCacheEntries bounds the in-memory cache of stream heads (version
	// and group) that spares each append a seek in the index, and that of
	// stored snapshot versions that spares each snapshot save a point read.
	// Default 100,000 each (about 10 MB and 6 MB: the active pots of a busy
	// node).
	HeadCacheEntries int

	// BloomBitsPerKey sizes the Bloom filter of each table, which spares a
	// point read (a stream's snapshot) the tables that do not hold its key.
	// Default 10 (pebbleopts.BloomBitsPerKeyDefault); negative: none.
	BloomBitsPerKey int

	// Logger receives Pebble's log lines (Info at Debug level) and the
	// store's own. Default: a logger that discards.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults and returns o.
// Groups stays zero (its default depends on what is stored).
func (o *Options) EnsureDefaults() *Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = cacheBytesDefault
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = memTableBytesDefault
	}
	if o.HeadCacheEntries == 0 {
		o.HeadCacheEntries = headCacheEntriesDefault
	}
	if o.BloomBitsPerKey == 0 {
		o.BloomBitsPerKey = pebbleopts.BloomBitsPerKeyDefault
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every field out of range, with its value.
func (o *Options) Validate() error {
	var errs []error
	if o.Groups > persistence.GroupsMax {
		errs = append(errs, fmt.Errorf("groups %d exceeds %d", o.Groups, persistence.GroupsMax))
	}
	if o.WALMinSyncInterval < 0 || o.WALMinSyncInterval > walMinSyncIntervalMax {
		errs = append(errs, fmt.Errorf("wal min sync interval %s outside [0, %s]", o.WALMinSyncInterval, walMinSyncIntervalMax))
	}
	if o.CacheBytes < 0 {
		errs = append(errs, fmt.Errorf("cache bytes %d is negative", o.CacheBytes))
	}
	if o.MemTableBytes > memTableBytesMax {
		errs = append(errs, fmt.Errorf("memtable bytes %d exceeds %d", o.MemTableBytes, memTableBytesMax))
	}
	if o.HeadCacheEntries < 0 {
		errs = append(errs, fmt.Errorf("head cache entries %d is negative", o.HeadCacheEntries))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("pebble journal: invalid options: %w", errors.Join(errs...))
}
