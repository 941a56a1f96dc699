package codec

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/acme/mastertrust/domain"
)

// An aggregator's in-memory forms: a pot's replica and a dealing day's
// frozen batch, encoded because a node holds them for a million pots. They
// are never journaled.
//
// A replica is decoded and encoded for every run of its pot's events in the
// feed, and decoded by the steps that have work for it (cut-off, settle, the
// sweep, reconciliation), so it is the pot in the binary form (binary.go)
// and its ledger. It starts with replicaFormat, so that a change of layout
// is caught, not misread.
const replicaFormat byte = 1

// EncodeReplica encodes a replica: the pot (its closed history dropped by
// the caller) and its ledger's non-zero balances.
func EncodeReplica(p *domain.Pot, l domain.Ledger) ([]byte, error) {
	return AppendReplica(make([]byte, 0, 512), p, l)
}

// AppendReplica is EncodeReplica appending to dst (a buffer to reuse).
func AppendReplica(dst []byte, p *domain.Pot, l domain.Ledger) ([]byte, error) {
	w := potWriter{b: dst}
	w.b = append(w.b, replicaFormat)
	if err := w.pot(p); err != nil {
		return nil, err
	}
	keys := slices.SortedFunc(maps.Keys(l), func(x, y domain.LedgerKey) int {
		return cmp.Or(cmp.Compare(x.Account, y.Account), cmp.Compare(x.Asset, y.Asset))
	})
	keys = slices.DeleteFunc(keys, func(k domain.LedgerKey) bool { return l[k].IsZero() })
	w.uint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k.Account)
		w.str(string(k.Asset))
		w.dec(l[k])
	}
	return w.b, nil
}

// DecodeReplica decodes what EncodeReplica encoded. The pot's invariants are
// not checked here (domain.Pot.Reindex): reconciliation checks them and
// reports a violation as a break.
func DecodeReplica(data []byte) (*domain.Pot, domain.Ledger, error) {
	if len(data) == 0 || data[0] != replicaFormat {
		return nil, nil, fmt.Errorf("codec: replica of another format")
	}
	r := potReader{s: string(data[1:])}
	p := r.pot()
	n := r.count()
	l := make(domain.Ledger, n)
	for ; n > 0; n-- {
		k := domain.LedgerKey{Account: r.str(), Asset: domain.ISIN(r.str())}
		l[k] = r.dec()
	}
	if r.end() != nil {
		return nil, nil, fmt.Errorf("codec: decode replica: %w", r.err)
	}
	p.Reindex()
	return p, l, nil
}

// DecodeReplicaBalances decodes only the start of a replica: the pot's
// profile, versions, cash and holdings, without its orders, movements and
// ledger (so its HasOpenTrades is false whatever the pot holds). It is for
// questions about balances alone, such as the sweep's, at a fraction of a
// whole decode's allocations.
func DecodeReplicaBalances(data []byte) (*domain.Pot, error) {
	if len(data) == 0 || data[0] != replicaFormat {
		return nil, fmt.Errorf("codec: replica of another format")
	}
	r := potReader{s: string(data[1:])}
	p := r.balances()
	if r.err != nil {
		return nil, fmt.Errorf("codec: decode replica: %w", r.err)
	}
	p.Reindex()
	return p, nil
}

// A frozen day's batch is its orders one after another, in the replica's
// binary form: the member, the order's id and its trades' terms.

// AppendBatchOrder appends one order of a dealing day's batch to b and
// returns the extended slice.
func AppendBatchOrder(b []byte, member string, o *domain.Order) []byte {
	w := potWriter{b: b}
	w.str(member)
	w.str(o.ID)
	w.uint(uint64(len(o.Trades)))
	for _, t := range o.Trades {
		w.tradeSpec(t.Spec())
	}
	return w.b
}

// DecodeBatch decodes a batch built by AppendBatchOrder into its trades, in
// the order they were appended.
func DecodeBatch(b []byte) ([]domain.DayTrade, error) {
	var trades []domain.DayTrade
	r := potReader{s: string(b), clone: true}
	for r.s != "" {
		member, order := r.str(), r.str()
		for n := r.count(); n > 0; n-- {
			trades = append(trades, domain.DayTrade{MemberID: member, OrderID: order, TradeSpec: r.tradeSpec()})
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("codec: decode batch: %w", r.err)
	}
	return trades, nil
}
