package codec

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// Pot snapshots: a PotSnapshot message after one byte that names the
// format, so that a snapshot of another format (format 1 was JSON, whose
// first byte is '{') is recognised and ignored rather than misread.
//
// Protobuf, not JSON: a JSON snapshot was 3.6 times the bytes of the events
// it stood for (a protobuf one 1.3 times: BenchmarkPotSnapshot), and
// encoding one with reflection was 5 to 9% of a busy pot's CPU
// (docs/performance.md).
const snapshotFormat byte = 2

// ErrSnapshotFormat: the snapshot was written in another format.
var ErrSnapshotFormat = errors.New("codec: pot snapshot of another format")

// EncodePotSnapshot encodes a pot's state.
func EncodePotSnapshot(p *domain.Pot) ([]byte, error) {
	m, err := potSnapshotMessage(p)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 1, 1+proto.Size(m))
	b[0] = snapshotFormat
	b, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, m)
	if err != nil {
		return nil, fmt.Errorf("codec: encode snapshot of pot %s: %w", p.MemberID, err)
	}
	return b, nil
}

// potSnapshotMessage is a pot's state as a message.
func potSnapshotMessage(p *domain.Pot) (*pb.PotSnapshot, error) {
	if len(p.OrderIDs) != len(p.Orders) || len(p.MovementIDs) != len(p.Movements) {
		return nil, fmt.Errorf("codec: snapshot of pot %s: %d order ids for %d orders, %d movement ids for %d movements",
			p.MemberID, len(p.OrderIDs), len(p.Orders), len(p.MovementIDs), len(p.Movements))
	}
	m := &pb.PotSnapshot{MemberId: p.MemberID, Profile: p.Profile, Opened: p.Opened, OpenedAtUnixNano: nanos(p.OpenedAt),
		Version: p.Version, Seq: p.Seq, CashAvailable: p.Cash.Available.String(), CashReserved: p.Cash.Reserved.String(),
		CashPending: p.Cash.Pending.String(), LastRebalance: p.LastRebalance.String()}
	for _, a := range slices.Sorted(maps.Keys(p.Holdings)) {
		h := p.Holdings[a]
		m.Holdings = append(m.Holdings, &pb.SnapshotHolding{Asset: string(a), Settled: h.Settled.String(),
			Reserved: h.Reserved.String(), Pending: h.Pending.String()})
	}
	m.Orders = make([]*pb.SnapshotOrder, 0, len(p.OrderIDs))
	for _, id := range p.OrderIDs {
		o, ok := p.Orders[id]
		if !ok {
			return nil, fmt.Errorf("codec: snapshot of pot %s: order id %s without its order", p.MemberID, id)
		}
		m.Orders = append(m.Orders, snapshotOrder(o))
	}
	m.Movements = make([]*pb.SnapshotMovement, 0, len(p.MovementIDs))
	for _, id := range p.MovementIDs {
		mv, ok := p.Movements[id]
		if !ok {
			return nil, fmt.Errorf("codec: snapshot of pot %s: movement id %s without its movement", p.MemberID, id)
		}
		m.Movements = append(m.Movements, &pb.SnapshotMovement{Id: mv.ID, Kind: uint32(mv.Kind), Amount: mv.Amount.String(),
			AtUnixNano: nanos(mv.At), DealingDate: mv.DealingDate.String(), OrderIds: mv.OrderIDs,
			CashPart: mv.CashPart.String(), Raised: mv.Raised.String(), Paid: mv.Paid.String(), PaidAtUnixNano: nanos(mv.PaidAt)})
	}
	m.Requests = make([]*pb.SnapshotRequest, 0, len(p.Requests))
	for _, r := range p.Requests {
		m.Requests = append(m.Requests, &pb.SnapshotRequest{Key: r.Key, Hash: r.Hash, Kind: pb.RequestKind(r.Kind), RefId: r.RefID,
			AtUnixNano: nanos(r.At)})
	}
	return m, nil
}

func snapshotOrder(o *domain.Order) *pb.SnapshotOrder {
	m := &pb.SnapshotOrder{Id: o.ID, Type: pb.OrderType(o.Type), MovementId: o.MovementID, CreatedAtUnixNano: nanos(o.CreatedAt),
		DealingDate: o.DealingDate.String(), OriginalDealingDate: o.OriginalDealingDate.String(), Cancelled: o.Cancelled,
		CancelledAtUnixNano: nanos(o.CancelledAt), Trades: make([]*pb.SnapshotTrade, 0, len(o.Trades))}
	for _, t := range o.Trades {
		st := &pb.SnapshotTrade{Spec: TradeSpecMessage(t.Spec()), Status: uint32(t.Status), PendingCash: t.PendingCash.String(),
			SettledAtUnixNano: nanos(t.SettledAt)}
		if t.Execution != nil {
			st.Execution = TradeExecutedMessage(t.Execution.Executed(t.ID))
		}
		m.Trades = append(m.Trades, st)
	}
	return m
}

// DecodePotSnapshot decodes a snapshot made by EncodePotSnapshot: a pot
// whose invariants hold (domain.Pot.Restore), or an error (ErrSnapshotFormat
// for another format).
func DecodePotSnapshot(data []byte) (*domain.Pot, error) {
	if len(data) == 0 || data[0] != snapshotFormat {
		return nil, ErrSnapshotFormat
	}
	var m pb.PotSnapshot
	if err := proto.Unmarshal(data[1:], &m); err != nil {
		return nil, fmt.Errorf("codec: decode pot snapshot: %w", err)
	}
	p, err := potFromSnapshot(&m)
	if err != nil {
		return nil, err
	}
	if err := p.Restore(); err != nil {
		return nil, fmt.Errorf("codec: decode pot snapshot: %w", err)
	}
	return p, nil
}

// potFromSnapshot is the pot a message holds, not yet restored.
func potFromSnapshot(m *pb.PotSnapshot) (*domain.Pot, error) {
	var d decoder
	p := domain.NewPot(m.MemberId)
	p.Profile, p.Opened, p.OpenedAt, p.Version, p.Seq = m.Profile, m.Opened, unixNano(m.OpenedAtUnixNano), m.Version, m.Seq
	p.Cash = domain.CashBalance{Available: d.money(m.CashAvailable), Reserved: d.money(m.CashReserved), Pending: d.money(m.CashPending)}
	p.LastRebalance = d.date(m.LastRebalance)
	for _, h := range m.Holdings {
		p.Holdings[domain.ISIN(h.Asset)] = &domain.Holding{Settled: d.units(h.Settled), Reserved: d.units(h.Reserved), Pending: d.units(h.Pending)}
	}
	for _, o := range m.Orders {
		order := d.order(o)
		p.Orders[order.ID] = order
		p.OrderIDs = append(p.OrderIDs, order.ID)
	}
	for _, mv := range m.Movements {
		p.Movements[mv.Id] = &domain.Movement{ID: mv.Id, Kind: domain.MovementKind(mv.Kind), Amount: d.money(mv.Amount),
			At: unixNano(mv.AtUnixNano), DealingDate: d.date(mv.DealingDate), OrderIDs: mv.OrderIds, CashPart: d.money(mv.CashPart),
			Raised: d.money(mv.Raised), Paid: d.money(mv.Paid), PaidAt: unixNano(mv.PaidAtUnixNano)}
		p.MovementIDs = append(p.MovementIDs, mv.Id)
	}
	for _, r := range m.Requests {
		p.Requests = append(p.Requests, domain.RequestRecord{Key: r.Key, Hash: r.Hash, Kind: domain.RequestKind(r.Kind),
			RefID: r.RefId, At: unixNano(r.AtUnixNano)})
	}
	if d.err != nil {
		return nil, fmt.Errorf("codec: decode pot snapshot of %s: %w", m.MemberId, d.err)
	}
	return p, nil
}

func (d *decoder) order(m *pb.SnapshotOrder) *domain.Order {
	o := &domain.Order{ID: m.Id, Type: domain.OrderType(m.Type), MovementID: m.MovementId, CreatedAt: unixNano(m.CreatedAtUnixNano),
		DealingDate: d.date(m.DealingDate), OriginalDealingDate: d.date(m.OriginalDealingDate), Cancelled: m.Cancelled,
		CancelledAt: unixNano(m.CancelledAtUnixNano)}
	for _, t := range m.Trades {
		if t.Spec == nil {
			if d.err == nil {
				d.err = fmt.Errorf("trade %d of order %s without its terms", len(o.Trades), m.Id)
			}
			break
		}
		// A trade's order is the one that holds it: OrderPlaced made both.
		tr := domain.NewTrade(m.Id, d.tradeSpec(t.Spec))
		tr.Status, tr.PendingCash, tr.SettledAt = domain.TradeStatus(t.Status), d.money(t.PendingCash), unixNano(t.SettledAtUnixNano)
		if t.Execution != nil {
			tr.Execution = d.tradeExecuted(t.Execution).Execution()
		}
		o.Trades = append(o.Trades, tr)
	}
	return o
}
