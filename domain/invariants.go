package domain

import (
	"errors"
	"fmt"
	"slices"
)

// CheckInvariants checks every invariant of a pot's state that holds between
// commands, and returns every violation found: invariants 1 and 4 of the
// platform's five, and the bookkeeping that ties the balances to the trades.
// The five, numbered as in docs/domain.md ("Invariants"), where code and
// tests cite them as "invariant N":
//
//  1. A pot's available cash, reserved cash, settled units and reserved
//     units are never negative, and reserved never exceeds held.
//  2. Replaying a pot's events from zero, or from any snapshot, gives the
//     same state.
//  3. An answered request is durable: after any crash, every request that
//     got a success answer is in the journal. A repeated request changes
//     nothing.
//  4. Every trade ends in exactly one terminal state (settled or
//     cancelled); none executes twice; none is lost.
//  5. Per dealing day and asset, units and cash are conserved between pots,
//     house account and custodian (the rounding rules make this exact).
//
// Invariants 2, 3 and 5 span events, processes and pots; docs/domain.md
// lists where each is checked.
//
// CheckInvariants is the expensive counterpart of the cheap assertions in
// Apply: property tests call it after every step, and internal
// reconciliation calls it for every pot.
func (p *Pot) CheckInvariants() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("pot %s: "+format, append([]any{p.MemberID}, args...)...))
	}
	// 1. Never negative; reserved never above held.
	if p.Cash.Available.Sign() < 0 || p.Cash.Reserved.Sign() < 0 || p.Cash.Pending.Sign() < 0 {
		bad("negative cash %+v", p.Cash)
	}
	for a, h := range p.Holdings {
		if h.Settled.Sign() < 0 || h.Reserved.Sign() < 0 || h.Pending.Sign() < 0 {
			bad("negative units of %s: %+v", a, *h)
		}
		if h.Reserved.Cmp(h.Settled) > 0 {
			bad("%s: reserved %s above settled %s", a, h.Reserved, h.Settled)
		}
	}

	// The balances are exactly what the trades and withdrawals say.
	var reservedCash, pendingCash Money
	reservedUnits := map[ISIN]Units{}
	pendingUnits := map[ISIN]Units{}
	for _, id := range p.OrderIDs {
		o := p.Orders[id]
		for _, t := range o.Trades {
			if p.Trades[t.ID] != t {
				bad("trade %s of order %s is not in the trade index", t.ID, o.ID)
			}
			switch t.Status {
			case TradeAccepted:
				if o.Cancelled {
					bad("trade %s accepted in cancelled order %s", t.ID, o.ID)
				}
				if t.Execution != nil {
					bad("accepted trade %s has an execution", t.ID)
				}
				reservedCash = reservedCash.Add(t.ReservedCash)
				reservedUnits[t.Asset] = reservedUnits[t.Asset].Add(t.ReservedUnits)
			case TradeExecutedStatus:
				if t.Execution == nil {
					bad("executed trade %s has no execution", t.ID)
					continue
				}
				pendingCash = pendingCash.Add(t.PendingCash)
				if t.Side == Buy {
					pendingUnits[t.Asset] = pendingUnits[t.Asset].Add(t.Execution.Units)
				}
			case TradeSettledStatus:
				if t.Execution == nil || t.SettledAt.IsZero() {
					bad("settled trade %s lacks its execution or settlement", t.ID)
				}
			case TradeCancelled:
				if !o.Cancelled {
					bad("cancelled trade %s in an order that is not cancelled", t.ID)
				}
			default:
				bad("trade %s in unknown status %d", t.ID, t.Status)
			}
			if t.Side == Sell && t.Execution != nil && t.Execution.Units.Cmp(t.ReservedUnits) > 0 {
				bad("sell %s executed %s units, above its reservation %s", t.ID, t.Execution.Units, t.ReservedUnits)
			}
			if t.Side == Buy && t.Execution != nil && t.Execution.Cash.Sign() < 0 {
				bad("buy %s has negative cost", t.ID)
			}
		}
	}
	if len(p.Trades) != countTrades(p) {
		bad("trade index has %d trades, orders have %d", len(p.Trades), countTrades(p))
	}
	for _, id := range p.MovementIDs {
		m := p.Movements[id]
		if m.Kind == Withdrawal && !m.IsPaid() {
			reservedCash = reservedCash.Add(m.CashPart).Add(m.Raised)
		}
		if m.Kind == Withdrawal && m.IsPaid() && m.Paid.Cmp(m.Amount) > 0 {
			bad("withdrawal %s paid %s, more than the %s asked", m.ID, m.Paid, m.Amount)
		}
	}
	if !reservedCash.Equal(p.Cash.Reserved) {
		bad("reserved cash %s, trades and withdrawals reserve %s", p.Cash.Reserved, reservedCash)
	}
	if !pendingCash.Equal(p.Cash.Pending) {
		bad("pending cash %s, executed trades hold %s", p.Cash.Pending, pendingCash)
	}
	assets := make([]ISIN, 0, len(p.Holdings))
	for a := range p.Holdings {
		assets = append(assets, a)
	}
	slices.Sort(assets)
	for _, a := range assets {
		h := p.Holdings[a]
		if !h.Reserved.Equal(reservedUnits[a]) {
			bad("%s: reserved units %s, accepted sells reserve %s", a, h.Reserved, reservedUnits[a])
		}
		if !h.Pending.Equal(pendingUnits[a]) {
			bad("%s: pending units %s, executed buys hold %s", a, h.Pending, pendingUnits[a])
		}
	}
	for a, u := range reservedUnits {
		if _, ok := p.Holdings[a]; !ok && !u.IsZero() {
			bad("%s: sells reserve %s units of an asset the pot does not hold", a, u)
		}
	}
	if len(p.OrderIDs) != len(p.Orders) || len(p.MovementIDs) != len(p.Movements) {
		bad("order or movement lists out of step with their maps")
	}
	return errors.Join(errs...)
}

func countTrades(p *Pot) int {
	n := 0
	for _, o := range p.Orders {
		n += len(o.Trades)
	}
	return n
}
