package persistencetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/acme/mastertrust/persistence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clockSlack allows for a backend whose commit time comes from a server
// clock (NATS) rather than this process's.
const clockSlack = 2 * time.Second

// testAppendRead proves that appended events read back with every field,
// one commit time per append, and that versions continue across appends.
func (s *suite) testAppendRead(t *testing.T) {
	ctx := testContext(t)
	j := open(t, s.storage(t, 4))
	if g := j.Groups(); g != 4 {
		t.Fatalf("Groups() = %d, want 4", g)
	}
	before := time.Now()
	mustAppend(t, ctx, j, appendReq("pot/A", 2, 0, ev("pot.Opened", "a1"), ev("pot.Paid", "a2"), ev("pot.Empty", "")))
	after := time.Now()
	mustAppend(t, ctx, j, appendReq("pot/A", 2, 3, ev("pot.Paid", "a4"), ev("pot.Paid", "a5")))
	mustAppend(t, ctx, j, appendReq("pot/B", 2, 0, ev("pot.Opened", "b1")))

	got := mustRead(t, ctx, j, "pot/A", 1, 0)
	want := []persistence.Event{
		{Stream: "pot/A", Version: 1, Group: 2, Type: "pot.Opened", Data: []byte("a1")},
		{Stream: "pot/A", Version: 2, Group: 2, Type: "pot.Paid", Data: []byte("a2")},
		{Stream: "pot/A", Version: 3, Group: 2, Type: "pot.Empty", Data: nil},
		{Stream: "pot/A", Version: 4, Group: 2, Type: "pot.Paid", Data: []byte("a4")},
		{Stream: "pot/A", Version: 5, Group: 2, Type: "pot.Paid", Data: []byte("a5")},
	}
	if len(got) != len(want) {
		t.Fatalf("read pot/A: %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if !sameEvent(got[i], want[i]) {
			t.Errorf("read pot/A [%d] = %+v, want %+v", i, got[i], want[i])
		}
		if got[i].Time.Location() != time.UTC {
			t.Errorf("read pot/A [%d]: time %v is not UTC", i, got[i].Time)
		}
	}
	for i := 1; i < 3; i++ {
		if !got[i].Time.Equal(got[0].Time) {
			t.Errorf("events of one append have times %v and %v", got[0].Time, got[i].Time)
		}
	}
	assert.WithinRange(t, got[0].Time, before.Add(-clockSlack), after.Add(clockSlack),
		"commit time of the first append (%s either side of the call)", clockSlack)
	if got[3].Time.Before(got[0].Time) {
		t.Errorf("later append has an earlier time: %v < %v", got[3].Time, got[0].Time)
	}
	if b := mustRead(t, ctx, j, "pot/B", 1, 0); assert.Len(t, b, 1, "read pot/B: events") {
		assert.Equal(t, "b1", string(b[0].Data), "read pot/B: data")
	}
	if none := mustRead(t, ctx, j, "pot/none", 1, 0); len(none) != 0 {
		t.Errorf("read of a stream never written = %+v, want none", none)
	}
}

// testReadFromAndLimit proves that a read from any version, with any limit,
// returns exactly the matching slice of the stream.
func (s *suite) testReadFromAndLimit(t *testing.T) {
	ctx := testContext(t)
	j := open(t, s.storage(t, 2))
	var all []persistence.Event
	v := uint64(0)
	for _, n := range []int{1, 3, 2, 4} {
		var evs []persistence.NewEvent
		for i := range n {
			d := fmt.Sprintf("e%d", v+uint64(i)+1)
			evs = append(evs, ev("t", d))
			all = append(all, persistence.Event{Stream: "agg/2026-11-23/1", Version: v + uint64(i) + 1, Group: 1, Type: "t", Data: []byte(d)})
		}
		v = mustAppend(t, ctx, j, appendReq("agg/2026-11-23/1", 1, v, evs...))
	}
	for from := uint64(0); from <= 12; from++ {
		for _, limit := range []int{-1, 0, 1, 3, 9, 100} {
			got := mustRead(t, ctx, j, "agg/2026-11-23/1", from, limit)
			lo := max(int(from), 1) - 1
			lo = min(lo, len(all))
			hi := len(all)
			if limit > 0 {
				hi = min(hi, lo+limit)
			}
			want := all[lo:hi]
			if len(got) != len(want) {
				t.Fatalf("read from %d limit %d: %d events, want %d", from, limit, len(got), len(want))
			}
			for i := range want {
				if !sameEvent(got[i], want[i]) {
					t.Fatalf("read from %d limit %d [%d] = %+v, want %+v", from, limit, i, got[i], want[i])
				}
			}
		}
	}
}

// testVersionConflict proves that a wrong expected version fails with a
// typed conflict naming both versions, and appends nothing.
func (s *suite) testVersionConflict(t *testing.T) {
	ctx := testContext(t)
	j := open(t, s.storage(t, 2))
	mustAppend(t, ctx, j, appendReq("pot/C", 0, 0, ev("t", "1"), ev("t", "2"), ev("t", "3")))
	for _, expected := range []uint64{0, 2, 4, 100} {
		_, err := j.Append(ctx, appendReq("pot/C", 0, expected, ev("t", "loser")))
		pe := wantErr(t, err, persistence.ErrVersionConflict, "append")
		assert.Equal(t, "pot/C", pe.Stream, "conflict at expected %d: stream", expected)
		assert.Equal(t, expected, pe.ExpectedVersion, "conflict at expected %d: expected version", expected)
		assert.Equal(t, uint64(3), pe.ActualVersion, "conflict at expected %d: actual version", expected)
	}
	_, err := j.Append(ctx, appendReq("pot/new", 0, 5, ev("t", "loser")))
	if pe := wantErr(t, err, persistence.ErrVersionConflict, "append"); pe.ActualVersion != 0 {
		t.Errorf("conflict on a new stream: actual %d, want 0", pe.ActualVersion)
	}
	if got := mustRead(t, ctx, j, "pot/C", 1, 0); len(got) != 3 {
		t.Errorf("after conflicts pot/C has %d events, want 3", len(got))
	}
	if got := mustRead(t, ctx, j, "pot/new", 1, 0); len(got) != 0 {
		t.Errorf("after a conflict pot/new has %d events, want 0", len(got))
	}
	for _, e := range readFeedAll(t, ctx, j, 0, 0, 100) {
		if string(e.Data) == "loser" {
			t.Errorf("a failed append is in the feed: %+v", e)
		}
	}
	// The stream still takes the right version.
	mustAppend(t, ctx, j, appendReq("pot/C", 0, 3, ev("t", "4")))
}

// testGroupIsFixed proves that a stream's first append fixes its group.
func (s *suite) testGroupIsFixed(t *testing.T) {
	ctx := testContext(t)
	j := open(t, s.storage(t, 4))
	mustAppend(t, ctx, j, appendReq("pot/G", 1, 0, ev("t", "1")))
	_, err := j.Append(ctx, appendReq("pot/G", 2, 1, ev("t", "other group")))
	wantErr(t, err, persistence.ErrInvalid, "append")
	_, err = j.Append(ctx, appendReq("pot/G", 3, 0, ev("t", "other group")))
	if !errors.Is(err, persistence.ErrInvalid) && !errors.Is(err, persistence.ErrVersionConflict) {
		t.Fatalf("re-creating a stream in another group: %v, want ErrInvalid or ErrVersionConflict", err)
	}
	if got := mustRead(t, ctx, j, "pot/G", 1, 0); assert.Len(t, got, 1, "pot/G: events") {
		assert.Equal(t, uint32(1), got[0].Group, "pot/G: group (its first append's)")
	}
	for _, g := range []uint32{2, 3} {
		if f := readFeedAll(t, ctx, j, g, 0, 10); len(f) != 0 {
			t.Errorf("group %d feed holds %+v after refused appends", g, f)
		}
	}
}

// testSnapshots proves save/load, that an older snapshot never replaces a
// newer one, and that snapshots of streams are independent.
func (s *suite) testSnapshots(t *testing.T) {
	ctx := testContext(t)
	j := open(t, s.storage(t, 2))
	_, found, err := j.LoadSnapshot(ctx, "pot/S")
	require.NoError(t, err, "load snapshot of nothing")
	require.False(t, found, "load snapshot of nothing: found")
	v := mustAppend(t, ctx, j, appendReq("pot/S", 1, 0, ev("t", "1"), ev("t", "2"), ev("t", "3"), ev("t", "4"), ev("t", "5")))
	mustAppend(t, ctx, j, appendReq("pot/T", 0, 0, ev("t", "1")))
	steps := []struct {
		save    persistence.Snapshot
		wantVer uint64
		want    string
	}{
		{persistence.Snapshot{Stream: "pot/S", Version: 3, Data: []byte("state@3")}, 3, "state@3"},
		{persistence.Snapshot{Stream: "pot/S", Version: 2, Data: []byte("state@2")}, 3, "state@3"}, // older: ignored
		{persistence.Snapshot{Stream: "pot/S", Version: v, Data: []byte("state@5")}, 5, "state@5"},
		{persistence.Snapshot{Stream: "pot/S", Version: 1, Data: []byte("state@1")}, 5, "state@5"}, // older: ignored
		{persistence.Snapshot{Stream: "pot/T", Version: 1, Data: nil}, 1, ""},
	}
	for i, st := range steps {
		if err := j.SaveSnapshot(ctx, st.save); err != nil {
			t.Fatalf("step %d: save %+v: %v", i, st.save, err)
		}
		got, found, err := j.LoadSnapshot(ctx, st.save.Stream)
		require.NoError(t, err, "step %d: load %s", i, st.save.Stream)
		require.True(t, found, "step %d: load %s: found", i, st.save.Stream)
		require.Equal(t, st.save.Stream, got.Stream, "step %d: load %s: stream", i, st.save.Stream)
		require.Equal(t, st.wantVer, got.Version, "step %d: load %s: version", i, st.save.Stream)
		require.Equal(t, st.want, string(got.Data), "step %d: load %s: data", i, st.save.Stream)
	}
	got, _, err := j.LoadSnapshot(ctx, "pot/S")
	require.NoError(t, err, "load pot/S after pot/T's snapshot")
	require.Equal(t, uint64(5), got.Version, "pot/S snapshot after pot/T's: version (pot/T's must not change it)")
	// A snapshot is a cache: the journal is untouched.
	if evs := mustRead(t, ctx, j, "pot/S", 1, 0); len(evs) != 5 {
		t.Errorf("pot/S has %d events after snapshots, want 5", len(evs))
	}
}

// fold is a stand-in for a pot's Apply: a hash chain over the events, so
// that a missing, repeated or reordered event changes the state.
func fold(state []byte, evs []persistence.Event) []byte {
	for _, e := range evs {
		h := sha256.New()
		h.Write(state)
		h.Write(binary.BigEndian.AppendUint64(nil, e.Version))
		h.Write([]byte(e.Type))
		h.Write(e.Data)
		state = h.Sum(nil)
	}
	return state
}

// testSnapshotPlusTail proves that recovering from a snapshot plus the
// events after it gives the state of a full replay.
func (s *suite) testSnapshotPlusTail(t *testing.T) {
	ctx := testContext(t)
	rng := newRand(t)
	j := open(t, s.storage(t, 2))
	const stream = "pot/R"
	v := uint64(0)
	snapAt := uint64(0)
	for v < 40 {
		n := 1 + rng.IntN(5)
		var evs []persistence.NewEvent
		for i := range n {
			evs = append(evs, ev(fmt.Sprintf("t%d", rng.IntN(3)), fmt.Sprintf("d%d-%d", v+uint64(i)+1, rng.Uint64())))
		}
		v = mustAppend(t, ctx, j, appendReq(stream, 1, v, evs...))
		if snapAt == 0 && v >= 17 {
			// Snapshot as a pot would: the state of everything read so far.
			snapAt = v
			state := fold(nil, mustRead(t, ctx, j, stream, 1, 0))
			if err := j.SaveSnapshot(ctx, persistence.Snapshot{Stream: stream, Version: v, Data: state}); err != nil {
				t.Fatal(err)
			}
		}
	}
	full := fold(nil, mustRead(t, ctx, j, stream, 1, 0))
	snap, found, err := j.LoadSnapshot(ctx, stream)
	require.NoError(t, err, "load snapshot")
	require.True(t, found, "load snapshot: found")
	require.Equal(t, snapAt, snap.Version, "load snapshot: version")
	tail := mustRead(t, ctx, j, stream, snap.Version+1, 0)
	require.NotEmpty(t, tail, "tail after %d (the stream is at %d)", snap.Version, v)
	require.Equal(t, snap.Version+1, tail[0].Version, "tail after %d: first version", snap.Version)
	require.Equal(t, v, tail[len(tail)-1].Version, "tail after %d: last version", snap.Version)
	if got := fold(snap.Data, tail); !bytes.Equal(got, full) {
		t.Errorf("snapshot@%d + %d tail events = %x, full replay of %d = %x", snap.Version, len(tail), got, v, full)
	}
}

// testLimits proves that requests at the contract's limits succeed and
// round-trip, and one byte more is refused.
func (s *suite) testLimits(t *testing.T) {
	ctx := testContext(t)
	j := open(t, s.storage(t, 1))
	maxName := "pot/" + strings.Repeat("n", persistence.StreamNameBytesMax-4)
	maxType := strings.Repeat("T", persistence.EventTypeBytesMax)
	big := bytes.Repeat([]byte{0xA5}, persistence.EventDataBytesMax)
	big[0], big[len(big)-1] = 1, 2

	mustAppend(t, ctx, j, appendReq(maxName, 0, 0, persistence.NewEvent{Type: maxType, Data: big}))
	// Lengths are compared as numbers and data with bytes.Equal: a failure
	// must not print megabytes.
	got := mustRead(t, ctx, j, maxName, 1, 0)
	require.Equal(t, 1, len(got), "largest event: events read back")
	require.Equal(t, maxType, got[0].Type, "largest event: type")
	require.Equal(t, len(big), len(got[0].Data), "largest event: data length")
	require.True(t, bytes.Equal(big, got[0].Data), "largest event: data (%d bytes) differs", len(big))

	many := make([]persistence.NewEvent, persistence.AppendEventsMax)
	for i := range many {
		many[i] = ev("t", fmt.Sprint(i))
	}
	mustAppend(t, ctx, j, appendReq("pot/many", 0, 0, many...))
	got = mustRead(t, ctx, j, "pot/many", 1, 0)
	require.Equal(t, persistence.AppendEventsMax, len(got), "largest append: events read back")
	require.Equal(t, "1023", string(got[1023].Data), "largest append: data of the last event")

	// The largest append in bytes: types and data add up to the limit.
	full := make([]persistence.NewEvent, 4)
	rest := persistence.AppendDataBytesMax
	for i := range full {
		n := min(persistence.EventDataBytesMax, rest-1)
		full[i] = persistence.NewEvent{Type: "t", Data: bytes.Repeat([]byte{byte('a' + i)}, n)}
		rest -= n + 1
	}
	if rest != 0 {
		t.Fatalf("test arithmetic: %d bytes left", rest)
	}
	mustAppend(t, ctx, j, appendReq("pot/full", 0, 0, full...))
	got = mustRead(t, ctx, j, "pot/full", 1, 0)
	if len(got) != 4 {
		t.Fatalf("fullest append: %d events read back", len(got))
	}
	for i := range full {
		if !bytes.Equal(got[i].Data, full[i].Data) {
			t.Fatalf("fullest append: event %d differs", i)
		}
	}
	full[3].Data = append(full[3].Data, 'x')
	_, err := j.Append(ctx, appendReq("pot/full", 0, 4, full...))
	wantErr(t, err, persistence.ErrInvalid, "append")

	snap := persistence.Snapshot{Stream: "pot/full", Version: 4, Data: bytes.Repeat([]byte{7}, persistence.SnapshotDataBytesMax)}
	if err := j.SaveSnapshot(ctx, snap); err != nil {
		t.Fatalf("largest snapshot: %v", err)
	}
	loaded, found, err := j.LoadSnapshot(ctx, "pot/full")
	require.NoError(t, err, "load the largest snapshot")
	require.True(t, found, "load the largest snapshot: found")
	require.Equal(t, len(snap.Data), len(loaded.Data), "largest snapshot: data length")
	require.True(t, bytes.Equal(snap.Data, loaded.Data), "largest snapshot: data (%d bytes) differs", len(snap.Data))
}

// testInvalid proves that every request that breaks the contract fails with
// ErrInvalid and changes nothing.
func (s *suite) testInvalid(t *testing.T) {
	ctx := testContext(t)
	j := open(t, s.storage(t, 2))
	one := []persistence.NewEvent{ev("t", "x")}
	bad := []struct {
		name string
		req  persistence.AppendRequest
	}{
		{"empty stream", appendReq("", 0, 0, one...)},
		{"long stream", appendReq(strings.Repeat("s", persistence.StreamNameBytesMax+1), 0, 0, one...)},
		{"dot in stream", appendReq("pot.1", 0, 0, one...)},
		{"space in stream", appendReq("pot 1", 0, 0, one...)},
		{"wildcard in stream", appendReq("pot/*", 0, 0, one...)},
		{"group out of range", appendReq("pot/1", 2, 0, one...)},
		{"no events", appendReq("pot/1", 0, 0)},
		{"too many events", appendReq("pot/1", 0, 0, make([]persistence.NewEvent, persistence.AppendEventsMax+1)...)},
		{"empty type", appendReq("pot/1", 0, 0, ev("", "x"))},
		{"long type", appendReq("pot/1", 0, 0, ev(strings.Repeat("t", persistence.EventTypeBytesMax+1), "x"))},
		{"large data", appendReq("pot/1", 0, 0, persistence.NewEvent{Type: "t", Data: make([]byte, persistence.EventDataBytesMax+1)})},
	}
	for _, b := range bad {
		_, err := j.Append(ctx, b.req)
		if !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("%s: append error %v, want ErrInvalid", b.name, err)
		}
	}
	for _, name := range []string{"", "a b", "a.b", "a>", strings.Repeat("s", persistence.StreamNameBytesMax+1)} {
		if _, err := j.Read(ctx, name, 1, 0); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("read %q: error %v, want ErrInvalid", name, err)
		}
		if _, _, err := j.LoadSnapshot(ctx, name); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("load snapshot %q: error %v, want ErrInvalid", name, err)
		}
		if err := j.SaveSnapshot(ctx, persistence.Snapshot{Stream: name, Version: 1}); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("save snapshot %q: error %v, want ErrInvalid", name, err)
		}
	}
	for _, snap := range []persistence.Snapshot{
		{Stream: "pot/1", Version: 0, Data: []byte("x")},
		{Stream: "pot/1", Version: 1, Data: make([]byte, persistence.SnapshotDataBytesMax+1)},
	} {
		if err := j.SaveSnapshot(ctx, snap); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("save snapshot version %d, %d bytes: error %v, want ErrInvalid", snap.Version, len(snap.Data), err)
		}
	}
	for _, c := range []struct {
		group uint32
		limit int
	}{{2, 10}, {0, 0}, {0, -1}} {
		_, err := j.ReadFeed(ctx, c.group, 0, c.limit)
		wantErr(t, err, persistence.ErrInvalid, "read feed")
	}
	for g := range uint32(2) {
		if f := readFeedAll(t, ctx, j, g, 0, 10); len(f) != 0 {
			t.Errorf("group %d feed holds %d events after invalid requests", g, len(f))
		}
	}
	_, found, err := j.LoadSnapshot(ctx, "pot/1")
	assert.NoError(t, err, "load pot/1's snapshot after invalid saves")
	assert.False(t, found, "pot/1 has a snapshot after invalid saves")
}

// testContextCancelled proves that a cancelled context fails every
// operation with the context's error and appends nothing.
func (s *suite) testContextCancelled(t *testing.T) {
	ctx := testContext(t)
	j := open(t, s.storage(t, 2))
	mustAppend(t, ctx, j, appendReq("pot/X", 0, 0, ev("t", "1")))
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := j.Append(done, appendReq("pot/X", 0, 1, ev("t", "cancelled"))); !errors.Is(err, context.Canceled) {
		t.Errorf("append: %v, want context.Canceled", err)
	}
	if _, err := j.Append(done, appendReq("pot/Y", 0, 0, ev("t", "cancelled"))); !errors.Is(err, context.Canceled) {
		t.Errorf("append to a new stream: %v, want context.Canceled", err)
	}
	if _, err := j.Read(done, "pot/X", 1, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("read: %v, want context.Canceled", err)
	}
	if _, err := j.ReadFeed(done, 0, 0, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("read feed: %v, want context.Canceled", err)
	}
	if err := j.SaveSnapshot(done, persistence.Snapshot{Stream: "pot/X", Version: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("save snapshot: %v, want context.Canceled", err)
	}
	if _, _, err := j.LoadSnapshot(done, "pot/X"); !errors.Is(err, context.Canceled) {
		t.Errorf("load snapshot: %v, want context.Canceled", err)
	}
	if got := mustRead(t, ctx, j, "pot/X", 1, 0); len(got) != 1 {
		t.Errorf("pot/X has %d events, want 1: a cancelled append was written", len(got))
	}
	if got := mustRead(t, ctx, j, "pot/Y", 1, 0); len(got) != 0 {
		t.Errorf("pot/Y has %d events, want 0: a cancelled append was written", len(got))
	}
	if _, found, _ := j.LoadSnapshot(ctx, "pot/X"); found {
		t.Errorf("a cancelled snapshot save was stored")
	}
	// An append after the cancelled ones takes the next version.
	mustAppend(t, ctx, j, appendReq("pot/X", 0, 1, ev("t", "2")))
}

// testClosed proves that every operation after Close fails with ErrClosed
// and that Close is idempotent.
func (s *suite) testClosed(t *testing.T) {
	ctx := testContext(t)
	j := open(t, s.storage(t, 2))
	mustAppend(t, ctx, j, appendReq("pot/Z", 0, 0, ev("t", "1")))
	if err := j.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := j.Append(ctx, appendReq("pot/Z", 0, 1, ev("t", "2"))); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("append after close: %v, want ErrClosed", err)
	}
	if _, err := j.Read(ctx, "pot/Z", 1, 0); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("read after close: %v, want ErrClosed", err)
	}
	if _, err := j.ReadFeed(ctx, 0, 0, 1); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("read feed after close: %v, want ErrClosed", err)
	}
	if err := j.SaveSnapshot(ctx, persistence.Snapshot{Stream: "pot/Z", Version: 1}); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("save snapshot after close: %v, want ErrClosed", err)
	}
	if _, _, err := j.LoadSnapshot(ctx, "pot/Z"); !errors.Is(err, persistence.ErrClosed) {
		t.Errorf("load snapshot after close: %v, want ErrClosed", err)
	}
	if err := j.Close(); err != nil {
		t.Errorf("second close: %v, want nil", err)
	}
	if g := j.Groups(); g != 2 {
		t.Errorf("Groups() after close = %d, want 2", g)
	}
}
