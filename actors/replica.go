package actors

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
)

// An aggregator's replicas, in the shape a node can hold for a million pots.
//
// A replica is its pot as the feed shows it, without the closed history
// (domain.Pot.DropClosed: settled and cancelled orders, contributions, paid
// withdrawals, idempotency keys), with the pot's ledger, held encoded
// (codec.EncodeReplica): as Go values a young pot's replica was ~14 KB
// (every decimal a big.Int, every id a string of its own) and grew with
// every order; encoded and without its history it is ~600 bytes for a pot
// with three open trades, and grows only with the pot's open work. Beside the bytes it keeps what
// the dealing day's steps look for in every pot — its open orders and their
// dealing dates, its earliest settlement, whether the sweep checks it — so
// that a step decodes only the pots it has work for.
//
// The feed gives a pot's events in runs (one append's events are
// consecutive), so a replica is decoded once for a run and encoded once
// after it (workingReplica).
type replica struct {
	version uint64 // the pot's version: its events up to it are applied
	state   []byte // codec.EncodeReplica
	// profiled: the pot is open and has a risk profile, so the sweep checks it.
	profiled      bool
	lastRebalance domain.Date
	// settleFrom is the earliest settlement date of its executed trades
	// (zero: none).
	settleFrom domain.Date
	// open are its orders whose trades are accepted: not cancelled, not
	// executed.
	open []openOrder
}

// openOrder is an accepted order and the day it deals.
type openOrder struct {
	id   string
	date domain.Date
}

// hasOpen reports whether the order is among the replica's open orders.
func (r *replica) hasOpen(orderID string) bool {
	for _, o := range r.open {
		if o.id == orderID {
			return true
		}
	}
	return false
}

// workingReplica is the replica being applied, decoded.
type workingReplica struct {
	member string
	r      *replica
	pot    *domain.Pot
	ledger domain.Ledger
}

// working returns the member's replica decoded for applying events: the
// one already decoded if it is the member's, else the previous one stored
// first. A member the aggregator has not seen gets an empty replica.
func (a *aggregator) working(member string) (*workingReplica, error) {
	if a.cur != nil && a.cur.member == member {
		return a.cur, nil
	}
	if err := a.storeWorking(); err != nil {
		return nil, err
	}
	r := a.pots[member]
	var p *domain.Pot
	var l domain.Ledger
	if r == nil {
		r = &replica{}
		a.pots[member] = r
		p, l = domain.NewPot(member), domain.Ledger{}
	} else {
		var err error
		if p, l, err = codec.DecodeReplica(r.state); err != nil {
			return nil, fmt.Errorf("group %d: replica of %s: %w", a.group, member, err)
		}
	}
	// Orders the pot retires as events apply leave with their executions,
	// which reconciliation still counts.
	p.OnRetire(func(o *domain.Order) { a.closedAllocated.addOrder(o) })
	a.cur = &workingReplica{member: member, r: r, pot: p, ledger: l}
	return a.cur, nil
}

// storeWorking drops the working replica's closed history (adding the
// executions it drops to closedAllocated), encodes it, and notes what the
// steps look for. catchUp ends with it, and every step runs after a
// catch-up, so the steps read stored replicas.
func (a *aggregator) storeWorking() error {
	w := a.cur
	if w == nil {
		return nil
	}
	a.cur = nil
	for _, o := range w.pot.DropClosed() {
		a.closedAllocated.addOrder(o)
	}
	state, err := codec.AppendReplica(a.scratch[:0], w.pot, w.ledger)
	if err != nil {
		return fmt.Errorf("group %d: %w", a.group, err)
	}
	a.scratch = state
	r, p := w.r, w.pot
	// The state is kept at its size (an encoder's buffer has room to grow
	// into: a third more, for a million replicas).
	if cap(r.state) >= len(state) && cap(r.state) <= len(state)+len(state)/8 {
		r.state = append(r.state[:0], state...)
	} else {
		r.state = bytes.Clone(state)
	}
	r.version = p.Version
	r.profiled, r.lastRebalance = p.Opened && p.Profile != "", p.LastRebalance
	previous := r.open
	r.settleFrom, r.open = domain.Date{}, nil
	for _, id := range p.OrderIDs {
		o := p.Orders[id]
		for _, t := range o.Trades {
			if t.Status == domain.TradeExecutedStatus && (r.settleFrom.IsZero() || t.Execution.SettlementDate.Before(r.settleFrom)) {
				r.settleFrom = t.Execution.SettlementDate
			}
		}
		if !o.Cancelled && o.Trades[0].Status == domain.TradeAccepted {
			// The decoded pot's strings share its decode's copy of the
			// bytes: keep an id of its own, not that copy.
			id := o.ID
			if i := slices.IndexFunc(previous, func(x openOrder) bool { return x.id == o.ID }); i >= 0 {
				id = previous[i].id
			} else {
				id = strings.Clone(id)
			}
			r.open = append(r.open, openOrder{id: id, date: o.DealingDate})
		}
	}
	return nil
}

// decoded returns a member's replica decoded, to read (the working one is
// stored first, so that it is read as it stands).
func (a *aggregator) decoded(member string) (*domain.Pot, domain.Ledger, error) {
	if err := a.storeWorking(); err != nil {
		return nil, nil, err
	}
	r := a.pots[member]
	if r == nil {
		return nil, nil, fmt.Errorf("group %d: no replica of %s", a.group, member)
	}
	p, l, err := codec.DecodeReplica(r.state)
	if err != nil {
		return nil, nil, fmt.Errorf("group %d: replica of %s: %w", a.group, member, err)
	}
	return p, l, nil
}

// dayAsset keys what a group allocated per dealing day and asset.
type dayAsset struct {
	date  string
	asset domain.ISIN
}

// allocatedSums adds up executions per dealing day and asset.
type allocatedSums map[dayAsset]*domain.AssetDay

// addOrder counts the executions of an order's trades.
func (s allocatedSums) addOrder(o *domain.Order) {
	for _, t := range o.Trades {
		if t.Execution != nil {
			s.add(t, t.Execution)
		}
	}
}

// add counts one trade's execution.
func (s allocatedSums) add(t *domain.Trade, e *domain.Execution) {
	k := dayAsset{e.DealingDate.String(), t.Asset}
	d := s[k]
	if d == nil {
		d = &domain.AssetDay{Asset: t.Asset, Price: e.Price}
		s[k] = d
	}
	d.Trades++
	if t.Side == domain.Buy {
		d.BuyUnits, d.PotBuyCost = d.BuyUnits.Add(e.Units), d.PotBuyCost.Add(e.Cash)
	} else {
		d.SellUnits, d.PotSellCash = d.SellUnits.Add(e.Units), d.PotSellCash.Add(e.Cash)
	}
}

// clone copies the sums.
func (s allocatedSums) clone() allocatedSums {
	c := make(allocatedSums, len(s))
	for k, d := range s {
		copied := *d
		c[k] = &copied
	}
	return c
}
