package pebble_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/pebbleopts"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
)

// benchEventBytes is a pot event's size.
const benchEventBytes = 200

var benchShapes = []struct{ writers, batch int }{
	{1, 1}, {16, 1}, {64, 1}, {256, 1}, {1, 64}, {16, 64}, {64, 64}, {256, 64},
}

// runWriters splits b.N appends over writers goroutines and reports events/s.
func runWriters(b *testing.B, writers, batch int, op func(w int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range writers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(w); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppend measures the journal on disk: each writer appends batch
// events to its own stream and waits for the synced acknowledgement.
// Compare with BenchmarkRawPebble in the same run (bench.RunJournal prints
// both side by side).
func BenchmarkAppend(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("writers=%d/batch=%d", s.writers, s.batch), func(b *testing.B) {
			st, err := pebble.Open(b.TempDir(), pebble.Options{Groups: 64})
			require.NoError(b, err)
			defer st.Close()
			evs := make([]persistence.NewEvent, s.batch)
			for i := range evs {
				evs[i] = persistence.NewEvent{Type: "pot.BenchEvent", Data: make([]byte, benchEventBytes)}
			}
			versions := make([]uint64, s.writers)
			ctx := context.Background()
			runWriters(b, s.writers, s.batch, func(w int) error {
				v, err := st.Append(ctx, persistence.AppendRequest{Stream: fmt.Sprintf("pot/b%05d", w), Group: uint32(w % 64), ExpectedVersion: versions[w], Events: evs})
				versions[w] = v
				return err
			})
		})
	}
}

// BenchmarkRawPebble is the ceiling: synced batches of the same events with
// no journal logic.
func BenchmarkRawPebble(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("writers=%d/batch=%d", s.writers, s.batch), func(b *testing.B) {
			cache := cpebble.NewCache(64 << 20)
			defer cache.Unref()
			db, err := cpebble.Open(b.TempDir(), &cpebble.Options{Cache: cache, MemTableSize: 64 << 20, FormatMajorVersion: cpebble.FormatNewest, Logger: quietLogger{}})
			require.NoError(b, err)
			defer db.Close()
			val := make([]byte, benchEventBytes)
			seqs := make([]uint64, s.writers)
			runWriters(b, s.writers, s.batch, func(w int) error {
				batch := db.NewBatch()
				defer batch.Close()
				for range s.batch {
					seqs[w]++
					if err := batch.Set(fmt.Appendf(nil, "r%05d/%016x", w, seqs[w]), val, nil); err != nil {
						return err
					}
				}
				return batch.Commit(cpebble.Sync)
			})
		})
	}
}

// quietLogger keeps raw Pebble's log lines out of benchmark output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// BenchmarkRecoverCold measures what a pot's activation reads from a
// journal that has grown: its snapshot, then the events after it (none for
// most: a pot passivates at its snapshot). Each store holds streams whose
// appends were interleaved over time, as a dealing month's are, and is
// reopened before the reads, so that the block cache is empty and no head
// is cached; the operating system's page cache is warm, as on a busy node.
// The sub-benchmarks compare a young store with one of 8 times the history
// per stream, with and without Bloom filters.
func BenchmarkRecoverCold(b *testing.B) {
	for _, appends := range []int{4, 32} {
		for _, bits := range []int{-1, pebbleopts.BloomBitsPerKeyDefault} {
			b.Run(fmt.Sprintf("appends=%d/bloom=%d", appends, bits), func(b *testing.B) {
				st, name := coldJournal(b, appends, bits)
				b.ResetTimer()
				for i := range b.N {
					recoverCold(b, st, name(i*7919%coldStreams))
				}
			})
		}
	}
}

// BenchmarkActivationCold is what a pot's activation and passivation read
// and write in a journal larger than its block cache: its snapshot, the
// events after it (none), then a new snapshot, synced.
func BenchmarkActivationCold(b *testing.B) {
	st, name := coldJournal(b, 32, pebbleopts.BloomBitsPerKeyDefault)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		stream := name(i * 7919 % coldStreams)
		if err := st.SaveSnapshot(ctx, recoverCold(b, st, stream)); err != nil {
			b.Fatal(stream, err)
		}
	}
}

// recoverCold reads what a pot's activation reads from a coldJournal: the
// stream's snapshot, which it returns, then the events after it (none).
func recoverCold(b *testing.B, st *pebble.Store, stream string) persistence.Snapshot {
	ctx := context.Background()
	s, found, err := st.LoadSnapshot(ctx, stream)
	if err != nil || !found {
		b.Fatal(stream, found, err)
	}
	evs, err := st.Read(ctx, stream, s.Version+1, 0)
	if err != nil || len(evs) != 0 {
		b.Fatal(stream, len(evs), err)
	}
	return s
}

// coldStreams and coldSnapshotBytes size coldJournal.
const coldStreams, coldSnapshotBytes = 50_000, 2_000

// coldJournal writes a journal of coldStreams streams, appends appends to
// each, interleaved, with a snapshot every 4th and after the last, and
// reopens it with a 16 MiB block cache and no cached heads. name(i) is
// stream i.
func coldJournal(b *testing.B, appends, bloomBitsPerKey int) (*pebble.Store, func(int) string) {
	b.Helper()
	dir := b.TempDir()
	opts := pebble.Options{Groups: 64, CacheBytes: 16 << 20, BloomBitsPerKey: bloomBitsPerKey}
	st, err := pebble.Open(dir, opts)
	require.NoError(b, err)
	ctx := context.Background()
	name := func(i int) string { return fmt.Sprintf("pot/m%07d", i) }
	ev := []persistence.NewEvent{{Type: "pot.BenchEvent", Data: make([]byte, benchEventBytes)}}
	snap := make([]byte, coldSnapshotBytes)
	const writers = 256
	for round := range appends {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := w; i < coldStreams; i += writers {
					_, err := st.Append(ctx, persistence.AppendRequest{Stream: name(i), Group: uint32(i % 64), ExpectedVersion: uint64(round), Events: ev})
					if err == nil && (round%4 == 3 || round == appends-1) {
						err = st.SaveSnapshot(ctx, persistence.Snapshot{Stream: name(i), Version: uint64(round + 1), Data: snap})
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	require.NoError(b, st.Close())
	st, err = pebble.Open(dir, opts)
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	return st, name
}
