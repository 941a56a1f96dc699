package actors

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// Aggregator snapshots. Without them an aggregator's activation replays its
// group's whole feed: every event any pot of the group ever appended, which
// grows for ever (23 s for a million pots after three dealing days,
// docs/performance.md). With them it reads its last snapshot (what its
// replicas, closed days and sums were at a feed position and own stream
// version), then its own events after that version and the feed after that
// position: bounded by the group's open work and what happened since.
//
// A snapshot of a large group is larger than one journal snapshot may be
// (persistence.SnapshotDataBytesMax, one NATS message on JetStream), so it
// is saved in chunks, each the snapshot of its own stream
// "agg/<group>/snap/<i>", each headed by the position, its index, the
// count and the hash of the whole. A set that does not fit together (a save
// cut short by a crash) is ignored and the aggregator replays as before:
// the snapshot is a cache, the journal the truth.

// aggregatorSnapshotChunkBytes bounds a chunk's payload, under
// persistence.SnapshotDataBytesMax with room for the header.
const aggregatorSnapshotChunkBytes = persistence.SnapshotDataBytesMax - 1024

// aggregatorSnapshotHeaderBytes: position, index, count, SHA-256 of the whole.
const aggregatorSnapshotHeaderBytes = 8 + 4 + 4 + sha256.Size

func aggregatorSnapshotStream(group uint32, chunk int) string {
	return aggregatorStream(group) + "/snap/" + strconv.Itoa(chunk)
}

// snapshotDue reports whether the aggregator has applied enough of its feed
// since its last snapshot to save another.
func (a *aggregator) snapshotDue() bool {
	every := a.deps.Config.AggregatorSnapshotEvery
	return every > 0 && a.position >= a.snapshotAt+uint64(every)
}

// saveSnapshot saves the aggregator's state in chunks. A failure costs only
// a longer activation; it is logged.
func (a *aggregator) saveSnapshot(ctx context.Context) {
	data, err := a.encodeSnapshot()
	if err == nil {
		err = saveChunks(ctx, a.deps.Journal, a.group, a.position, data)
	}
	if err != nil {
		a.deps.Logger.Warn("aggregator snapshot not saved", "group", a.group, "position", a.position, "err", err)
		return
	}
	a.snapshotAt = a.position
}

func saveChunks(ctx context.Context, j persistence.Journal, group uint32, position uint64, data []byte) error {
	sum := sha256.Sum256(data)
	count := max(1, (len(data)+aggregatorSnapshotChunkBytes-1)/aggregatorSnapshotChunkBytes)
	// The last chunk first: chunk 0, read first at activation, lands last,
	// so a set cut short is seen as one at load (its hash or positions
	// disagree) rather than half of a new set.
	for i := count - 1; i >= 0; i-- {
		part := data[min(len(data), i*aggregatorSnapshotChunkBytes):min(len(data), (i+1)*aggregatorSnapshotChunkBytes)]
		chunk := make([]byte, 0, aggregatorSnapshotHeaderBytes+len(part))
		chunk = binary.BigEndian.AppendUint64(chunk, position)
		chunk = binary.BigEndian.AppendUint32(chunk, uint32(i))
		chunk = binary.BigEndian.AppendUint32(chunk, uint32(count))
		chunk = append(chunk, sum[:]...)
		chunk = append(chunk, part...)
		// The snapshot's version is the feed position: positions only grow,
		// so a newer set replaces an older one chunk by chunk.
		if err := j.SaveSnapshot(ctx, persistence.Snapshot{Stream: aggregatorSnapshotStream(group, i), Version: max(position, 1), Data: chunk}); err != nil {
			return fmt.Errorf("save chunk %d of %d: %w", i, count, err)
		}
	}
	return nil
}

// errNoSnapshot: no usable snapshot (none saved, or a set that does not fit
// together).
var errNoSnapshot = errors.New("no usable aggregator snapshot")

// loadChunks reads a group's snapshot chunks and returns the whole.
func loadChunks(ctx context.Context, j persistence.Journal, group uint32) ([]byte, error) {
	var data []byte
	var position uint64
	var count int
	var sum []byte
	for i := 0; i == 0 || i < count; i++ {
		s, found, err := j.LoadSnapshot(ctx, aggregatorSnapshotStream(group, i))
		if err != nil {
			return nil, fmt.Errorf("load chunk %d: %w", i, err)
		}
		if !found || len(s.Data) < aggregatorSnapshotHeaderBytes {
			return nil, fmt.Errorf("%w: chunk %d missing or short", errNoSnapshot, i)
		}
		h := s.Data
		p, index, n := binary.BigEndian.Uint64(h), int(binary.BigEndian.Uint32(h[8:])), int(binary.BigEndian.Uint32(h[12:]))
		if i == 0 {
			position, count, sum = p, n, h[16:aggregatorSnapshotHeaderBytes]
		}
		if p != position || index != i || n != count || !bytes.Equal(h[16:aggregatorSnapshotHeaderBytes], sum) {
			return nil, fmt.Errorf("%w: chunk %d of position %d (%d of %d), want %d of %d at %d", errNoSnapshot, i, p, index, n, i, count, position)
		}
		data = append(data, h[aggregatorSnapshotHeaderBytes:]...)
	}
	if got := sha256.Sum256(data); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: the chunks' hash differs", errNoSnapshot)
	}
	return data, nil
}

// encodeSnapshot encodes the aggregator's whole state, in one order for one
// state (the replicas by member, the days by date, …).
func (a *aggregator) encodeSnapshot() ([]byte, error) {
	if err := a.storeWorking(); err != nil {
		return nil, err
	}
	s := &pb.AggregatorSnapshot{OwnVersion: a.stream.version, Position: a.position, NotifiedUpTo: a.notifiedUpTo,
		PendingNotes: a.pendingNotes}
	for _, member := range slices.Sorted(maps.Keys(a.pots)) {
		r := a.pots[member]
		rs := &pb.ReplicaState{MemberId: member, Version: r.version, State: r.state, Profiled: r.profiled,
			LastRebalance: dateText(r.lastRebalance), SettleFrom: dateText(r.settleFrom)}
		for _, o := range r.open {
			rs.OpenOrderIds, rs.OpenDates = append(rs.OpenOrderIds, o.id), append(rs.OpenDates, o.date.String())
		}
		s.Replicas = append(s.Replicas, rs)
	}
	for _, k := range slices.SortedFunc(maps.Keys(a.closedAllocated), func(x, y dayAsset) int {
		return cmp.Or(cmp.Compare(x.date, y.date), cmp.Compare(x.asset, y.asset))
	}) {
		d, err := domain.ParseDate(k.date)
		if err != nil {
			return nil, err
		}
		s.ClosedAllocated = append(s.ClosedAllocated, assetDayPart(d, a.group, a.closedAllocated[k]))
	}
	for _, date := range slices.Sorted(maps.Keys(a.days)) {
		d := a.days[date]
		s.Days = append(s.Days, &pb.ClosedDayState{Date: date, Position: d.position, Frozen: d.frozen, Batch: d.batch,
			Orders: int64(d.orders), Trades: int64(d.trades), Allocated: d.allocated, AllocatedPots: int64(d.allocatedPots)})
	}
	for _, id := range slices.Sorted(maps.Keys(a.late)) {
		l := a.late[id]
		s.Late = append(s.Late, &pb.LateOrderState{OrderId: id, MemberId: l.member, FromDate: l.from.String()})
	}
	for _, date := range slices.Sorted(maps.Keys(a.priced)) {
		s.Priced = append(s.Priced, a.priced[date])
	}
	s.Allocating = slices.Sorted(maps.Keys(a.allocating))
	for _, id := range slices.Sorted(maps.Keys(a.absorbed)) {
		s.Absorbed = append(s.Absorbed, a.absorbed[id])
	}
	for _, date := range slices.Sorted(maps.Keys(a.sweeps)) {
		s.Sweeps = append(s.Sweeps, a.sweeps[date])
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(s)
}

// restoreSnapshot sets the aggregator's state from a snapshot, all or
// nothing: on an error the aggregator is as it was.
func (a *aggregator) restoreSnapshot(data []byte) error {
	s := &pb.AggregatorSnapshot{}
	if err := proto.Unmarshal(data, s); err != nil {
		return fmt.Errorf("decode aggregator snapshot: %w", err)
	}
	pots := make(map[string]*replica, len(s.Replicas))
	for _, rs := range s.Replicas {
		r := &replica{version: rs.Version, state: rs.State, profiled: rs.Profiled}
		var err error
		if r.lastRebalance, err = parseDateText(rs.LastRebalance); err != nil {
			return err
		}
		if r.settleFrom, err = parseDateText(rs.SettleFrom); err != nil {
			return err
		}
		if len(rs.OpenOrderIds) != len(rs.OpenDates) {
			return fmt.Errorf("replica of %s: %d open orders, %d dates", rs.MemberId, len(rs.OpenOrderIds), len(rs.OpenDates))
		}
		for i, id := range rs.OpenOrderIds {
			d, err := domain.ParseDate(rs.OpenDates[i])
			if err != nil {
				return err
			}
			r.open = append(r.open, openOrder{id: id, date: d})
		}
		pots[rs.MemberId] = r
	}
	closedAllocated := allocatedSums{}
	for _, part := range s.ClosedAllocated {
		d, err := decodeAssetDay(part)
		if err != nil {
			return err
		}
		closedAllocated[dayAsset{part.DealingDate, d.Asset}] = &d
	}
	days := map[string]*closedDay{}
	var unfrozen []*closedDay
	for _, ds := range s.Days {
		d, err := domain.ParseDate(ds.Date)
		if err != nil {
			return err
		}
		day := &closedDay{date: d, position: ds.Position, frozen: ds.Frozen, batch: ds.Batch, orders: int(ds.Orders),
			trades: int(ds.Trades), allocated: ds.Allocated, allocatedPots: int(ds.AllocatedPots)}
		days[ds.Date] = day
		if !day.frozen {
			unfrozen = append(unfrozen, day)
		}
	}
	late := map[string]lateOrder{}
	for _, l := range s.Late {
		d, err := domain.ParseDate(l.FromDate)
		if err != nil {
			return err
		}
		late[l.OrderId] = lateOrder{member: l.MemberId, from: d}
	}
	a.stream.version, a.position, a.snapshotAt = s.OwnVersion, s.Position, s.Position
	a.pots, a.closedAllocated, a.days, a.unfrozen, a.late = pots, closedAllocated, days, unfrozen, late
	for _, m := range s.Priced {
		a.priced[m.Date] = m
	}
	for _, date := range s.Allocating {
		a.allocating[date] = true
	}
	for _, m := range s.Absorbed {
		a.absorbed[m.TradeId] = m
	}
	for _, m := range s.Sweeps {
		a.sweeps[m.Date] = m
	}
	a.notifiedUpTo, a.pendingNotes = s.NotifiedUpTo, s.PendingNotes
	return nil
}

// recoverFromSnapshot restores the group's last snapshot, if there is a
// usable one. One that cannot be read is logged and ignored: the
// aggregator replays its stream and feed from the start instead.
func (a *aggregator) recoverFromSnapshot(ctx context.Context) {
	if a.deps.Config.AggregatorSnapshotEvery <= 0 {
		return
	}
	data, err := loadChunks(ctx, a.deps.Journal, a.group)
	if err == nil {
		err = a.restoreSnapshot(data)
	}
	switch {
	case err == nil:
		a.deps.Logger.Info("aggregator restored from its snapshot", "group", a.group, "position", a.position, "replicas", len(a.pots))
	case errors.Is(err, errNoSnapshot):
		a.deps.Logger.Debug("aggregator replays its feed", "group", a.group, "reason", err)
	default:
		a.deps.Logger.Warn("aggregator snapshot ignored; replaying the feed", "group", a.group, "err", err)
	}
}

func dateText(d domain.Date) string {
	if d.IsZero() {
		return ""
	}
	return d.String()
}

func parseDateText(s string) (domain.Date, error) {
	if s == "" {
		return domain.Date{}, nil
	}
	return domain.ParseDate(s)
}
