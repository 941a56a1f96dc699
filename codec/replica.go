package codec

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// An aggregator's in-memory forms (proto/replica.proto): a pot's replica
// and a dealing day's frozen batch, encoded because a node holds them for a
// million pots. They are never journaled, so they carry no format marker.

// EncodeReplica encodes a replica: the pot (its closed history dropped by
// the caller) and its ledger's non-zero balances.
func EncodeReplica(p *domain.Pot, l domain.Ledger) ([]byte, error) {
	m, err := potSnapshotMessage(p)
	if err != nil {
		return nil, err
	}
	r := &pb.ReplicaState{Pot: m}
	keys := slices.SortedFunc(maps.Keys(l), func(x, y domain.LedgerKey) int {
		return cmp.Or(cmp.Compare(x.Account, y.Account), cmp.Compare(x.Asset, y.Asset))
	})
	for _, k := range keys {
		if v := l[k]; !v.IsZero() {
			r.Ledger = append(r.Ledger, &pb.LedgerBalance{Account: k.Account, Asset: string(k.Asset), Amount: v.String()})
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("codec: encode replica of pot %s: %w", p.MemberID, err)
	}
	return b, nil
}

// DecodeReplica decodes what EncodeReplica encoded. The pot's invariants are
// not checked here (domain.Pot.Reindex): reconciliation checks them and
// reports a violation as a break.
func DecodeReplica(data []byte) (*domain.Pot, domain.Ledger, error) {
	var r pb.ReplicaState
	if err := proto.Unmarshal(data, &r); err != nil {
		return nil, nil, fmt.Errorf("codec: decode replica: %w", err)
	}
	if r.Pot == nil {
		return nil, nil, fmt.Errorf("codec: replica without its pot")
	}
	p, err := potFromSnapshot(r.Pot)
	if err != nil {
		return nil, nil, err
	}
	p.Reindex()
	var d decoder
	l := make(domain.Ledger, len(r.Ledger))
	for _, b := range r.Ledger {
		l[domain.LedgerKey{Account: b.Account, Asset: domain.ISIN(b.Asset)}] = d.decimal("ledger balance", b.Amount)
	}
	if d.err != nil {
		return nil, nil, fmt.Errorf("codec: decode replica of %s: %w", p.MemberID, d.err)
	}
	return p, l, nil
}

// AppendBatchOrder appends one order of a dealing day's batch to b, length
// delimited, and returns the extended slice.
func AppendBatchOrder(b []byte, member string, o *domain.Order) ([]byte, error) {
	m := &pb.BatchOrder{MemberId: member, OrderId: o.ID, Trades: make([]*pb.TradeSpec, 0, len(o.Trades))}
	for _, t := range o.Trades {
		m.Trades = append(m.Trades, TradeSpecMessage(t.Spec()))
	}
	enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return b, fmt.Errorf("codec: encode batch order %s: %w", o.ID, err)
	}
	return protowire.AppendBytes(b, enc), nil
}

// DecodeBatch decodes a batch built by AppendBatchOrder into its trades, in
// the order they were appended.
func DecodeBatch(b []byte) ([]domain.DayTrade, error) {
	var trades []domain.DayTrade
	for len(b) > 0 {
		enc, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, fmt.Errorf("codec: decode batch: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var m pb.BatchOrder
		if err := proto.Unmarshal(enc, &m); err != nil {
			return nil, fmt.Errorf("codec: decode batch order: %w", err)
		}
		for _, t := range m.Trades {
			spec, err := DecodeTradeSpec(t)
			if err != nil {
				return nil, fmt.Errorf("codec: batch order %s: %w", m.OrderId, err)
			}
			trades = append(trades, domain.DayTrade{MemberID: m.MemberId, OrderID: m.OrderId, TradeSpec: spec})
		}
	}
	return trades, nil
}
