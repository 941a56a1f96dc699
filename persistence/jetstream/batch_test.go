package jetstream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/persistence"
)

// batchFixture is a journal of one JetStream stream on an embedded server
// whose appends always go through the batcher, with streams "pot/b0" …
// "pot/b<n-1>" at version 1.
type batchFixture struct {
	t       *testing.T
	store   *Store
	other   *Store // a second node on the same journal
	streams []string
}

func newBatchFixture(t *testing.T, n int) *batchFixture {
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func() *Store {
		nc, err := nats.Connect(srv.ClientURL())
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		s, err := Open(ctx, nc, Options{Prefix: "bt", Groups: 4, Streams: 1, BatchAppendsMin: 1})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	f := &batchFixture{t: t, store: open(), other: open()}
	for i := range n {
		stream := fmt.Sprintf("pot/b%d", i)
		_, err := f.store.Append(ctx, persistence.AppendRequest{Stream: stream, Group: uint32(i % 4),
			Events: []persistence.NewEvent{{Type: "pot.Opened", Data: []byte("v1")}}})
		require.NoError(t, err)
		f.streams = append(f.streams, stream)
	}
	return f
}

// pending is the append of version 2 to stream i, as Append makes it,
// expecting the sequence of version 1.
func (f *batchFixture) pending(ctx context.Context, i int) *pendingAppend {
	h, ok := f.store.heads.get(f.streams[i])
	require.True(f.t, ok, "head of %s", f.streams[i])
	req := persistence.AppendRequest{Stream: f.streams[i], Group: uint32(i % 4), ExpectedVersion: 1,
		Events: []persistence.NewEvent{{Type: "pot.Contributed", Data: []byte("v2 by the batch")}}}
	return newPendingAppend(ctx, f.store.appendMessage(req, h.seq), h.seq)
}

func (f *batchFixture) version2(ctx context.Context, i int) string {
	evs, err := f.other.Read(ctx, f.streams[i], 2, 0)
	require.NoError(f.t, err)
	require.Len(f.t, evs, 1, "%s after version 1", f.streams[i])
	return string(evs[0].Data)
}

// eachAtVersion2 checks that nothing was stored twice: every stream holds
// exactly its versions 1 and 2.
func (f *batchFixture) eachAtVersion2(ctx context.Context) {
	for i := range f.streams {
		evs, err := f.other.Read(ctx, f.streams[i], 1, 0)
		require.NoError(f.t, err)
		assert.Len(f.t, evs, 2, "%s", f.streams[i])
	}
}

// A batch whose middle append was overtaken by another node: that append
// alone is answered with a conflict, every other one is stored once, in
// the batch's order, and the stream holds the other node's event.
func TestBatchConflictInTheMiddle(t *testing.T) {
	f := newBatchFixture(t, 9)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := f.other.Append(ctx, persistence.AppendRequest{Stream: f.streams[4], Group: 0, ExpectedVersion: 1,
		Events: []persistence.NewEvent{{Type: "pot.Contributed", Data: []byte("v2 by the other node")}}})
	require.NoError(t, err)

	var batch []*pendingAppend
	for i := range f.streams {
		batch = append(batch, f.pending(ctx, i))
	}
	done := append([]*pendingAppend(nil), batch...)
	f.store.batchers[0].commit(batch)

	var seqs []uint64
	for i, p := range done {
		o := <-p.done
		if i == 4 {
			require.ErrorIs(t, o.err, errWrongLastSequence, "the overtaken append")
			assert.Equal(t, "v2 by the other node", f.version2(ctx, i))
			continue
		}
		require.NoError(t, o.err, "append %d", i)
		seqs = append(seqs, o.seq)
		assert.Equal(t, "v2 by the batch", f.version2(ctx, i), "stream %d", i)
	}
	for k := 1; k < len(seqs); k++ {
		assert.Equal(t, seqs[k-1]+1, seqs[k], "the retried batch's sequences follow its order: %v", seqs)
	}
	f.eachAtVersion2(ctx)
}

// A batch tried again after it was stored (its acknowledgement lost) is
// resolved by reading: every append is answered with the sequence it was
// stored at, and nothing is stored twice.
func TestBatchStoredThenTriedAgain(t *testing.T) {
	f := newBatchFixture(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var batch []*pendingAppend
	for i := range f.streams {
		batch = append(batch, f.pending(ctx, i))
	}
	b := f.store.batchers[0]
	require.NoError(t, b.publishBatch(batch))
	var first []uint64
	for _, p := range batch {
		o := <-p.done
		require.NoError(t, o.err)
		first = append(first, o.seq)
	}

	b.commit(append([]*pendingAppend(nil), batch...)) // the same messages, the same ids
	for i, p := range batch {
		o := <-p.done
		require.NoError(t, o.err, "append %d tried again", i)
		assert.Equal(t, first[i], o.seq, "append %d is where the first try stored it", i)
	}
	f.eachAtVersion2(ctx)
}

// Two appends of one pot never share a batch (the server refuses an
// expected sequence on a subject the batch already writes): the second
// waits for the next batch and is then a conflict, as two appends at the
// same version are.
func TestBatchSplitsSameSubject(t *testing.T) {
	f := newBatchFixture(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	batch := []*pendingAppend{f.pending(ctx, 0), f.pending(ctx, 1), f.pending(ctx, 1), f.pending(ctx, 2)}
	kept, carry := splitSameSubject(append([]*pendingAppend(nil), batch...), nil)
	require.Len(t, kept, 3)
	require.Equal(t, []*pendingAppend{batch[2]}, carry)

	b := f.store.batchers[0]
	b.commit(kept)
	b.commit(carry)
	for i, p := range batch {
		o := <-p.done
		if i == 2 {
			assert.ErrorIs(t, o.err, errWrongLastSequence)
			continue
		}
		assert.NoError(t, o.err, "append %d", i)
	}
}
