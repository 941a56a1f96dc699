package jetstream_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/jetstream"
)

// benchEventBytes is a pot event's size.
const benchEventBytes = 200

var benchShapes = []struct{ writers, batch, streams int }{
	{1, 1, 4}, {16, 1, 4}, {64, 1, 4}, {256, 1, 4},
	{1, 64, 4}, {16, 64, 4}, {64, 64, 4}, {256, 64, 4},
	// More JetStream streams: more fsyncs in parallel.
	{256, 1, 1}, {256, 1, 16}, {256, 1, 64},
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

// writerGroup spreads writers evenly over the groups, as hashing does.
func writerGroup(w, writers int, groups uint32) uint32 {
	if writers >= int(groups) {
		return uint32(w) % groups
	}
	return uint32(w * int(groups) / writers)
}

// BenchmarkAppend measures the journal on an embedded server with
// SyncAlways: each writer appends batch events to its own stream and waits
// for the acknowledgement, with the appends of a stream batched (the
// default) or each published alone. Compare with BenchmarkRawPublish.
func BenchmarkAppend(b *testing.B) {
	for _, s := range benchShapes {
		for _, mode := range appendModes {
			b.Run(fmt.Sprintf("%s/writers=%d/batch=%d/streams=%d", mode.name, s.writers, s.batch, s.streams), func(b *testing.B) {
				srv := startServer(b, b.TempDir())
				runAppends(b, connect(b, srv.ClientURL()), jetstream.Options{Groups: 64, Streams: s.streams, BatchAppendsMax: mode.appendsMax},
					s.writers, s.batch)
			})
		}
	}
}

// appendModes are the two ways the benchmarks append: batched (the
// default) and each append published alone.
var appendModes = []struct {
	name       string
	appendsMax int // Options.BatchAppendsMax
}{{"batched", 0}, {"message", 1}}

// runAppends opens a journal on nc with opts and measures writers each
// appending batch events to its own stream.
func runAppends(b *testing.B, nc *nats.Conn, opts jetstream.Options, writers, batch int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := jetstream.Open(ctx, nc, opts)
	require.NoError(b, err)
	defer st.Close()
	evs := make([]persistence.NewEvent, batch)
	for i := range evs {
		evs[i] = persistence.NewEvent{Type: "pot.BenchEvent", Data: make([]byte, benchEventBytes)}
	}
	versions := make([]uint64, writers)
	runWriters(b, writers, batch, func(w int) error {
		v, err := st.Append(context.Background(), persistence.AppendRequest{Stream: fmt.Sprintf("pot/b%05d", w),
			Group: writerGroup(w, writers, opts.Groups), ExpectedVersion: versions[w], Events: evs})
		versions[w] = v
		return err
	})
}

// BenchmarkRawPublish is the ceiling: synchronous publishes of the same
// bytes to as many streams, with SyncAlways and no journal logic.
func BenchmarkRawPublish(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("writers=%d/batch=%d/streams=%d", s.writers, s.batch, s.streams), func(b *testing.B) {
			srv := startServer(b, b.TempDir())
			nc := connect(b, srv.ClientURL())
			js, err := natsjs.New(nc)
			require.NoError(b, err)
			ctx := context.Background()
			for i := range s.streams {
				_, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: fmt.Sprintf("raw_%d", i), Subjects: []string{fmt.Sprintf("raw.%d.>", i)}, Storage: natsjs.FileStorage})
				require.NoError(b, err)
			}
			payload := make([]byte, s.batch*(benchEventBytes+16))
			runWriters(b, s.writers, s.batch, func(w int) error {
				stream := int(writerGroup(w, s.writers, 64)) * s.streams / 64
				_, err := js.Publish(ctx, fmt.Sprintf("raw.%d.%d", stream, w), payload)
				return err
			})
		})
	}
}

// BenchmarkReadFeedUpToDate is the history read model's poll of a group
// with nothing new (every group of every node, every 200 ms): one direct
// get answered with no message. Its allocations are the point: a poll
// must not cost more than its answer.
func BenchmarkReadFeedUpToDate(b *testing.B) {
	srv := startServer(b, b.TempDir())
	nc := connect(b, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := jetstream.Open(ctx, nc, jetstream.Options{Groups: 64})
	require.NoError(b, err)
	defer st.Close()
	_, err = st.Append(ctx, persistence.AppendRequest{Stream: "pot/b00001", Group: 1,
		Events: []persistence.NewEvent{{Type: "pot.BenchEvent", Data: make([]byte, benchEventBytes)}}})
	require.NoError(b, err)
	page, err := st.ReadFeed(ctx, 1, 0, 1000)
	require.NoError(b, err)
	require.Len(b, page, 1)
	after := page[0].Position
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		page, err := st.ReadFeed(ctx, 1, after, 1000)
		if err != nil || len(page) != 0 {
			b.Fatalf("read feed after the last event: %d events, %v", len(page), err)
		}
	}
}

// BenchmarkAppendReplicated is BenchmarkAppend on three servers (in this
// process) with every stream replicated three times, as in production:
// there the server stages an atomic batch in memory, where a one-replica
// file stream stages it in a file store of its own.
//
// The shapes with other than 4 streams (the journal's default) spread the
// 64 groups over fewer or more Raft groups: each stream has a leader of
// its own.
func BenchmarkAppendReplicated(b *testing.B) {
	for _, s := range []struct{ writers, streams int }{{64, 4}, {256, 4}, {256, 1}, {256, 16}} {
		for _, mode := range appendModes {
			b.Run(fmt.Sprintf("%s/writers=%d/streams=%d", mode.name, s.writers, s.streams), func(b *testing.B) {
				servers := startCluster(b)
				runAppends(b, connect(b, servers[0].ClientURL()),
					jetstream.Options{Groups: 64, Streams: s.streams, Replicas: 3, BatchAppendsMax: mode.appendsMax}, s.writers, 1)
			})
		}
	}
}
