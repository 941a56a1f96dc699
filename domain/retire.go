package domain

import (
	"slices"
	"time"
)

// Retirement: a pot's state holds what its decisions need, not its history
// (docs/domain.md, "History and retention"). An order leaves the state once
// it is closed (every trade settled or cancelled), a movement once it is
// done (a contribution whose orders are closed, a paid withdrawal), unless
// an idempotency key still in its window refers to it: a repeat of that
// request is answered with the resource as it stands, from the state. The
// member's history is a read model built from the journal (package
// history); the journal keeps every event for ever.
//
// Retirement happens inside Apply, at three events: RequestRecorded (the
// end of every member decision, when the key protecting what it made is
// recorded), TradeSettled and RebalanceRecorded (the system's decisions).
// Never at the event that creates or pays a movement, because the key that
// protects it is recorded after it in the same decision. Replaying the same
// events therefore retires the same things at the same points (invariant 2).
//
// An id the pot handed out (see Issued) that is not in the state is
// retired: a late repeat of an execution or settlement of one of its trades
// is a repeat, answered with no events.

// retire forgets the idempotency keys past their retention at the time of
// the event being applied (and the oldest beyond requestsMax), then removes
// the movements and orders nothing needs any more.
func (p *Pot) retire(at time.Time) {
	drop := 0
	for ; drop < len(p.Requests); drop++ {
		q := p.Requests[drop]
		expired := !q.At.Add(RequestRetention).After(at)
		over := len(p.Requests)-drop > requestsMax
		if !expired && !over {
			break
		}
		p.ForgottenThrough = max(p.ForgottenThrough, q.Version)
		if p.requestRefs != nil {
			if n := p.requestRefs[q.RefID]; n > 1 {
				p.requestRefs[q.RefID] = n - 1
			} else {
				delete(p.requestRefs, q.RefID)
			}
		}
	}
	if drop > 0 {
		p.Requests = slices.Delete(p.Requests, 0, drop)
		p.requestIndex = nil // indexes moved; rebuilt when needed
	}
	keyed := func(id string) bool {
		for _, r := range p.Requests {
			if r.RefID == id {
				return true
			}
		}
		return false
	}
	if len(p.Requests) > requestIndexFrom {
		// A busy week's keys: a count by RefID, built once and then kept
		// (rebuilding it at every event cost a pot of 2,000 keys most of
		// its CPU), not a scan per movement and order.
		if p.requestRefs == nil {
			p.requestRefs = make(map[string]int, len(p.Requests))
			for _, r := range p.Requests {
				p.requestRefs[r.RefID]++
			}
		}
		keyed = func(id string) bool { return p.requestRefs[id] > 0 }
	}
	p.MovementIDs = slices.DeleteFunc(p.MovementIDs, func(id string) bool {
		// The key first: most movements of a busy week are still keyed,
		// and the key is one look-up where done-ness is several.
		if keyed(id) || !p.movementDone(p.Movements[id]) {
			return false
		}
		delete(p.Movements, id)
		return true
	})
	p.OrderIDs = slices.DeleteFunc(p.OrderIDs, func(id string) bool {
		if keyed(id) {
			return false
		}
		o := p.Orders[id]
		if !o.Closed() {
			return false
		}
		if _, held := p.Movements[o.MovementID]; held {
			return false // its movement's view shows it
		}
		for _, t := range o.Trades {
			delete(p.Trades, t.ID)
		}
		delete(p.Orders, id)
		if p.retired != nil {
			p.retired(o)
		}
		return true
	})
}

// movementDone reports whether a movement has nothing left to happen: a
// paid withdrawal, or a contribution whose orders are all closed.
func (p *Pot) movementDone(m *Movement) bool {
	if m.Kind == Withdrawal {
		return m.IsPaid()
	}
	for _, id := range m.OrderIDs {
		if o, ok := p.Orders[id]; ok && !o.Closed() {
			return false
		}
	}
	return true
}

// Issued reports whether id is an order, trade or movement id this pot
// handed out: "<member>-<n>" with n at most Seq. One that is issued and not
// in the state has been retired.
func (p *Pot) Issued(id string) bool {
	n, ok := idSeq(p.MemberID, id)
	return ok && n >= 1 && n <= p.Seq
}

// OnRetire has f called with each order as it is retired, closed and with
// its final executions (an aggregator's replica sums them for
// reconciliation). It is not part of the state: a decoded pot has none.
func (p *Pot) OnRetire(f func(*Order)) { p.retired = f }

// IDNumber is the number n of an id "<member>-<n>" the pot of memberID
// hands out: ids are numbered in the order they were handed out.
func IDNumber(memberID, id string) (uint64, bool) { return idSeq(memberID, id) }
