package domain

import (
	"fmt"
	"slices"
)

// Snapshots of a pot's state. The journal is the truth and a snapshot a
// cache of it: package codec encodes one (EncodePotSnapshot) as it encodes the
// events, and a snapshot that cannot be read is ignored (the pot replays its
// events instead).

// Restore completes a pot decoded from a snapshot: the maps left empty, the
// trade index (derived from the orders, so not stored: storing it would
// store every trade twice), and a check of the pot's invariants, so that a
// damaged snapshot is refused rather than trusted.
func (p *Pot) Restore() error {
	p.Reindex()
	if err := p.CheckInvariants(); err != nil {
		return fmt.Errorf("domain: restored pot %s breaks invariants: %w", p.MemberID, err)
	}
	return nil
}

// Reindex completes a decoded pot as Restore does, without checking its
// invariants: for a state this process encoded itself and checks elsewhere
// (an aggregator's replica, which reconciliation checks).
func (p *Pot) Reindex() {
	if p.Holdings == nil {
		p.Holdings = map[ISIN]*Holding{}
	}
	if p.Orders == nil {
		p.Orders = map[string]*Order{}
	}
	if p.Movements == nil {
		p.Movements = map[string]*Movement{}
	}
	p.Trades = map[string]*Trade{}
	for _, o := range p.Orders {
		for _, t := range o.Trades {
			p.Trades[t.ID] = t
		}
	}
	p.requestIndex, p.requestRefs = nil, nil
}

// DropClosed removes from the pot what no later event can change or read:
// the orders whose every trade is settled or cancelled, the contributions
// (their cash is in the balance the moment they are made), the paid
// withdrawals, and the idempotency keys. It returns the orders removed. What
// stays is the pot's balances, holdings and open work: the same whether the
// pot dropped its closed history after every event or once after all of
// them, so two pots built from the same events compare equal after it
// (Canonical). It is the shape of an aggregator's replica (actors), which
// keeps a million pots and needs only their open work; the pot grain keeps
// its whole history.
func (p *Pot) DropClosed() []*Order {
	var dropped []*Order
	p.OrderIDs = slices.DeleteFunc(p.OrderIDs, func(id string) bool {
		o := p.Orders[id]
		if !o.Closed() {
			return false
		}
		for _, t := range o.Trades {
			delete(p.Trades, t.ID)
		}
		delete(p.Orders, id)
		dropped = append(dropped, o)
		return true
	})
	p.MovementIDs = slices.DeleteFunc(p.MovementIDs, func(id string) bool {
		m := p.Movements[id]
		if m.Kind == Withdrawal && !m.IsPaid() {
			return false
		}
		delete(p.Movements, id)
		return true
	})
	p.Requests, p.requestIndex, p.requestRefs, p.ForgottenThrough = nil, nil, nil, 0
	return dropped
}

// Closed reports whether every trade of the order is settled or cancelled:
// no later event changes the order, and its status no longer depends on the
// day's cut-off (OrderStatusAt).
func (o *Order) Closed() bool {
	for _, t := range o.Trades {
		if t.Status != TradeSettledStatus && t.Status != TradeCancelled {
			return false
		}
	}
	return true
}
