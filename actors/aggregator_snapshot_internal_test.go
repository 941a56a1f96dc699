package actors

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/proto/pb"
)

// TestAggregatorSnapshotChunks: a snapshot larger than one journal
// snapshot is saved in chunks and read back whole; a set cut short (a
// crash between chunks) or damaged is not used.
func TestAggregatorSnapshotChunks(t *testing.T) {
	j, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 2})
	require.NoError(t, err)
	defer j.Close()
	ctx := context.Background()
	_, err = loadChunks(ctx, j, 0)
	require.ErrorIs(t, err, errNoSnapshot, "no snapshot yet")

	data := make([]byte, 2*aggregatorSnapshotChunkBytes+12345) // three chunks
	for i := range data {
		data[i] = byte(i * 7)
	}
	require.NoError(t, saveChunks(ctx, j, 0, 100, data))
	got, err := loadChunks(ctx, j, 0)
	require.NoError(t, err)
	require.Equal(t, data, got)

	// A newer set whose save stopped after its last chunk: chunk 0 still
	// says position 100, chunk 2 says 200.
	newer := append([]byte("newer"), data...)
	require.NoError(t, j.SaveSnapshot(ctx, persistence.Snapshot{Stream: aggregatorSnapshotStream(0, 2), Version: 200,
		Data: chunkOf(t, newer, 200, 2)}))
	_, err = loadChunks(ctx, j, 0)
	require.ErrorIs(t, err, errNoSnapshot, "a set cut short")

	// A whole new set replaces it.
	require.NoError(t, saveChunks(ctx, j, 0, 300, newer))
	got, err = loadChunks(ctx, j, 0)
	require.NoError(t, err)
	require.Equal(t, newer, got)
}

// chunkOf is chunk i of data as saveChunks writes it.
func chunkOf(t *testing.T, data []byte, position uint64, i int) []byte {
	t.Helper()
	j, err := pebble.Open("scratch", pebble.Options{FS: vfs.NewMem(), Groups: 2})
	require.NoError(t, err)
	defer j.Close()
	require.NoError(t, saveChunks(context.Background(), j, 0, position, data))
	s, found, err := j.LoadSnapshot(context.Background(), aggregatorSnapshotStream(0, i))
	require.NoError(t, err)
	require.True(t, found)
	return s.Data
}

// TestAggregatorRestoredEqualsReplayed: an aggregator restored from its
// snapshot, then fed its own events and the feed after it, holds exactly
// the state (as its snapshot encodes it) of one that replays its stream
// and feed from the start.
func TestAggregatorRestoredEqualsReplayed(t *testing.T) {
	j, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 2})
	require.NoError(t, err)
	defer j.Close()
	cal, err := domain.NewCalendar(domain.CalendarConfig{Location: time.UTC})
	require.NoError(t, err)
	mon := domain.MustDate("2026-11-23")
	now := mon.At(9, 0, time.UTC)
	deps := func(every int) *DealingDeps {
		d := &DealingDeps{Journal: j, Catalogue: domain.DefaultCatalogue(), Calendar: cal, Now: func() time.Time { return now },
			Config: DealingConfig{AggregatorSnapshotEvery: every}, Logger: slog.New(slog.DiscardHandler)}
		d.Config.EnsureDefaults()
		return d
	}
	pots := map[string]*domain.Pot{}
	decide := func(member string, cmd domain.Command) {
		t.Helper()
		p := pots[member]
		if p == nil {
			p = domain.NewPot(member)
			pots[member] = p
		}
		dctx := &domain.Context{Now: now, Catalogue: domain.DefaultCatalogue(), Calendar: cal}
		dec, err := domain.Decide(p, cmd, dctx)
		require.NoError(t, err, "%s %T", member, cmd)
		req := persistence.AppendRequest{Stream: PotStream(member), Group: 0, ExpectedVersion: p.Version}
		for _, e := range dec.Events {
			typ, data, err := codec.EncodePotEvent(e)
			require.NoError(t, err)
			req.Events = append(req.Events, persistence.NewEvent{Type: typ, Data: data})
			p.Apply(e)
		}
		_, err = j.Append(context.Background(), req)
		require.NoError(t, err)
	}
	for i := range 6 {
		m := fmt.Sprintf("A%03d", i)
		decide(m, domain.OpenPot{Key: "open", Profile: []string{"cautious", "balanced", ""}[i%3]})
		decide(m, domain.Contribute{Key: "pay", Amount: domain.MustMoney("1000.00")})
	}
	ctx := context.Background()
	first := &aggregator{deps: deps(1)}
	require.NoError(t, first.activate("0", nil))
	_, err = first.close(ctx, &pb.AggClose{Date: mon.String()})
	require.NoError(t, err)
	first.saveSnapshot(ctx)
	require.Equal(t, first.position, first.snapshotAt, "snapshot saved")

	// After the snapshot: more orders, for the next day.
	now = now.Add(24 * time.Hour)
	for i := range 3 {
		decide(fmt.Sprintf("A%03d", i), domain.Contribute{Key: "pay-2", Amount: domain.MustMoney("50.00")})
	}
	decide("A009", domain.OpenPot{Key: "open", Profile: "balanced"})

	restored := &aggregator{deps: deps(1)}
	restored.recoverFromSnapshot(ctx)
	require.Equal(t, first.position, restored.position, "restored at the snapshot's position")
	require.NoError(t, restored.activate("0", nil))
	replayed := &aggregator{deps: deps(-1)}
	require.NoError(t, replayed.activate("0", nil))
	require.NotZero(t, replayed.position)
	want, err := replayed.encodeSnapshot()
	require.NoError(t, err)
	got, err := restored.encodeSnapshot()
	require.NoError(t, err)
	require.Equal(t, want, got, "restored and replayed aggregators differ")
	require.Len(t, restored.pots, 7)
	require.NotEmpty(t, restored.days[mon.String()].batch, "the frozen batch of the closed day")
}
