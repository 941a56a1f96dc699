package domain

import (
	"fmt"
	"time"
)

// Apply folds one event into the pot. Events come from Decide or from the
// journal; Apply trusts them (Decide validated them) but asserts the
// invariants an event could break, and panics on a violation: a broken
// invariant is a bug, and a pot must not carry on from it.
func (p *Pot) Apply(e Event) {
	switch e := e.(type) {
	case PotOpened:
		p.MemberID, p.Profile, p.Opened, p.OpenedAt = e.MemberID, e.Profile, true, e.At
	case RequestRecorded:
		p.applyRequestRecorded(e)
	case CashContributed:
		p.Cash.Available = p.Cash.Available.Add(e.Amount)
		p.Movements[e.MovementID] = &Movement{ID: e.MovementID, Kind: Contribution, Amount: e.Amount, At: e.At}
		p.MovementIDs = append(p.MovementIDs, e.MovementID)
		p.bumpSeq(e.MovementID)
	case WithdrawalRequested:
		p.Cash.Available = p.Cash.Available.Sub(e.CashPart)
		p.Cash.Reserved = p.Cash.Reserved.Add(e.CashPart)
		p.Movements[e.MovementID] = &Movement{ID: e.MovementID, Kind: Withdrawal, Amount: e.Amount, At: e.At,
			DealingDate: e.DealingDate, CashPart: e.CashPart}
		p.MovementIDs = append(p.MovementIDs, e.MovementID)
		p.bumpSeq(e.MovementID)
	case WithdrawalPaid:
		m := p.mustMovement(e.MovementID)
		held := m.CashPart.Add(m.Raised)
		p.Cash.Reserved = p.Cash.Reserved.Sub(held)
		p.Cash.Available = p.Cash.Available.Add(held.Sub(e.Amount))
		m.Paid, m.PaidAt = e.Amount, e.At
	case OrderPlaced:
		p.applyOrderPlaced(e)
	case OrderCancelled:
		o := p.mustOrder(e.OrderID)
		o.Cancelled, o.CancelledAt = true, e.At
		for _, t := range o.Trades {
			if t.Status == TradeAccepted {
				p.release(t)
				t.Status = TradeCancelled
			}
		}
	case OrderRolled:
		o := p.mustOrder(e.OrderID)
		o.DealingDate = e.To
		if m, ok := p.Movements[o.MovementID]; ok && m.DealingDate.Before(e.To) {
			m.DealingDate = e.To
		}
	case TradeExecuted:
		p.applyTradeExecuted(e)
	case TradeSettled:
		p.applyTradeSettled(e)
		p.retire(e.At)
	case RiskProfileSet:
		p.Profile = e.Profile
	case RebalanceRecorded:
		p.LastRebalance = e.Date
		p.retire(e.At)
	default:
		panic(fmt.Sprintf("domain: Apply of unknown event %T", e))
	}
	p.Version++
	p.assertCash()
}

func (p *Pot) applyRequestRecorded(e RequestRecorded) {
	r := e.Record
	r.Version = p.Version + 1 // the event being applied
	p.Requests = append(p.Requests, r)
	if p.requestIndex != nil {
		p.requestIndex[r.Key] = len(p.Requests) - 1
	}
	if p.requestRefs != nil {
		p.requestRefs[r.RefID]++
	}
	p.retire(r.At)
}

func (p *Pot) applyOrderPlaced(e OrderPlaced) {
	o := &Order{ID: e.OrderID, Type: e.Type, MovementID: e.MovementID, CreatedAt: e.At,
		DealingDate: e.DealingDate, OriginalDealingDate: e.DealingDate}
	p.bumpSeq(e.OrderID)
	for _, ts := range e.Trades {
		t := NewTrade(e.OrderID, ts)
		p.Cash.Available = p.Cash.Available.Sub(t.ReservedCash)
		p.Cash.Reserved = p.Cash.Reserved.Add(t.ReservedCash)
		if t.ReservedUnits.Sign() != 0 {
			h := p.holdingForUpdate(t.Asset)
			h.Reserved = h.Reserved.Add(t.ReservedUnits)
			p.assertHolding(t.Asset, h)
		}
		o.Trades = append(o.Trades, t)
		p.Trades[t.ID] = t
		p.bumpSeq(t.ID)
	}
	p.Orders[o.ID] = o
	p.OrderIDs = append(p.OrderIDs, o.ID)
	if m, ok := p.Movements[e.MovementID]; ok {
		m.OrderIDs = append(m.OrderIDs, o.ID)
		if m.DealingDate.IsZero() || m.DealingDate.Before(e.DealingDate) {
			m.DealingDate = e.DealingDate
		}
	}
}

// release returns what an accepted trade reserved.
func (p *Pot) release(t *Trade) {
	p.Cash.Reserved = p.Cash.Reserved.Sub(t.ReservedCash)
	p.Cash.Available = p.Cash.Available.Add(t.ReservedCash)
	if t.ReservedUnits.Sign() != 0 {
		h := p.holdingForUpdate(t.Asset)
		h.Reserved = h.Reserved.Sub(t.ReservedUnits)
		p.assertHolding(t.Asset, h)
	}
}

func (p *Pot) applyTradeExecuted(e TradeExecuted) {
	t := p.mustTrade(e.TradeID)
	if t.Status != TradeAccepted {
		panic(fmt.Sprintf("domain: pot %s: execution of trade %s in status %d", p.MemberID, t.ID, t.Status))
	}
	h := p.holdingForUpdate(t.Asset)
	switch t.Side {
	case Buy:
		// The reserved fixed cash is spent; with the proceeds shares it
		// makes the buy's funding (e.Cash is its cost, at most the funding).
		funding := p.linkedFunding(t)
		p.Cash.Reserved = p.Cash.Reserved.Sub(t.ReservedCash)
		change := funding.Sub(e.Cash)
		if t.IsLinked() {
			// Funded partly by unsettled proceeds: the change settles with the buy.
			t.PendingCash = change
			p.Cash.Pending = p.Cash.Pending.Add(change)
		} else {
			p.Cash.Available = p.Cash.Available.Add(change)
		}
		h.Pending = h.Pending.Add(e.Units)
	case Sell:
		h.Reserved = h.Reserved.Sub(t.ReservedUnits)
		h.Settled = h.Settled.Sub(e.Units)
		// Proceeds less what the order's linked buys take of them.
		kept := e.Cash.Sub(p.sharesOfProceeds(t, e.Cash))
		t.PendingCash = kept
		p.Cash.Pending = p.Cash.Pending.Add(kept)
	}
	p.assertHolding(t.Asset, h)
	t.Status = TradeExecutedStatus
	t.Execution = e.Execution()
}

// linkedFunding is the cash a buy spends: its fixed cash plus, for a linked
// buy, its shares of its sells' proceeds. A share of a sell not yet executed
// is computed when the buy executes from the execution's own cash (the
// aggregator computed it from the same prices); see Decide.
func (p *Pot) linkedFunding(t *Trade) Money {
	funding := t.Cash
	for _, share := range t.Funding {
		funding = funding.Add(ProceedsLinkedBuyCash(share.Fraction, p.proceedsOf(share.SellTradeID), Money{}))
	}
	return funding
}

// proceedsOf is the proceeds of an executed sell (zero if not executed:
// Decide refuses to execute a linked buy before its sells).
func (p *Pot) proceedsOf(sellTradeID string) Money {
	if s, ok := p.Trades[sellTradeID]; ok && s.Execution != nil {
		return s.Execution.Cash
	}
	return Money{}
}

// sharesOfProceeds is what the linked buys of sell's order take of its
// proceeds: Σ floor(fraction × proceeds, 2) over every buy funded by sell.
func (p *Pot) sharesOfProceeds(sell *Trade, proceeds Money) Money {
	var taken Money
	o := p.Orders[sell.OrderID]
	for _, b := range o.Trades {
		for _, share := range b.Funding {
			if share.SellTradeID == sell.ID && b.Status != TradeCancelled {
				taken = taken.Add(ProceedsLinkedBuyCash(share.Fraction, proceeds, Money{}))
			}
		}
	}
	return taken
}

func (p *Pot) applyTradeSettled(e TradeSettled) {
	t := p.mustTrade(e.TradeID)
	if t.Status != TradeExecutedStatus {
		panic(fmt.Sprintf("domain: pot %s: settlement of trade %s in status %d", p.MemberID, t.ID, t.Status))
	}
	if t.Side == Buy {
		h := p.holdingForUpdate(t.Asset)
		h.Pending = h.Pending.Sub(t.Execution.Units)
		h.Settled = h.Settled.Add(t.Execution.Units)
		p.assertHolding(t.Asset, h)
	}
	p.Cash.Pending = p.Cash.Pending.Sub(t.PendingCash)
	o := p.Orders[t.OrderID]
	if m, ok := p.Movements[o.MovementID]; ok && m.Kind == Withdrawal && t.Side == Sell {
		// A withdrawal's sell raises cash for the withdrawal, not for the pot.
		m.Raised = m.Raised.Add(t.PendingCash)
		p.Cash.Reserved = p.Cash.Reserved.Add(t.PendingCash)
	} else {
		p.Cash.Available = p.Cash.Available.Add(t.PendingCash)
	}
	t.Status = TradeSettledStatus
	t.SettledAt = e.At
}

func (p *Pot) holdingForUpdate(asset ISIN) *Holding {
	h, ok := p.Holdings[asset]
	if !ok {
		h = &Holding{}
		p.Holdings[asset] = h
	}
	return h
}

// bumpSeq keeps Seq at least the number in an id the pot handed out
// ("M1-17" or "M1-17-2" → 17), so replay restores the counter.
func (p *Pot) bumpSeq(id string) {
	if n, ok := idSeq(p.MemberID, id); ok && n > p.Seq {
		p.Seq = n
	}
}

func (p *Pot) mustOrder(id string) *Order {
	o, ok := p.Orders[id]
	if !ok {
		panic(fmt.Sprintf("domain: pot %s: no order %s", p.MemberID, id))
	}
	return o
}

func (p *Pot) mustTrade(id string) *Trade {
	t, ok := p.Trades[id]
	if !ok {
		panic(fmt.Sprintf("domain: pot %s: no trade %s", p.MemberID, id))
	}
	return t
}

func (p *Pot) mustMovement(id string) *Movement {
	m, ok := p.Movements[id]
	if !ok {
		panic(fmt.Sprintf("domain: pot %s: no movement %s", p.MemberID, id))
	}
	return m
}

// assertCash panics if a cash balance went negative (docs/domain.md
// invariant 1).
func (p *Pot) assertCash() {
	if p.Cash.Available.Sign() < 0 || p.Cash.Reserved.Sign() < 0 || p.Cash.Pending.Sign() < 0 {
		panic(fmt.Sprintf("domain: pot %s: negative cash %+v", p.MemberID, p.Cash))
	}
}

// assertHolding panics if a holding broke invariant 1: no negative units,
// reserved never above settled.
func (p *Pot) assertHolding(asset ISIN, h *Holding) {
	if h.Settled.Sign() < 0 || h.Reserved.Sign() < 0 || h.Pending.Sign() < 0 || h.Reserved.Cmp(h.Settled) > 0 {
		panic(fmt.Sprintf("domain: pot %s: holding of %s broken: settled %s reserved %s pending %s",
			p.MemberID, asset, h.Settled, h.Reserved, h.Pending))
	}
}

// eventTime is the time an event happened, for statements.
func eventTime(e Event) time.Time {
	switch e := e.(type) {
	case PotOpened:
		return e.At
	case RequestRecorded:
		return e.Record.At
	case CashContributed:
		return e.At
	case WithdrawalRequested:
		return e.At
	case WithdrawalPaid:
		return e.At
	case OrderPlaced:
		return e.At
	case OrderCancelled:
		return e.At
	case OrderRolled:
		return e.At
	case TradeExecuted:
		return e.At
	case TradeSettled:
		return e.At
	case RiskProfileSet:
		return e.At
	case RebalanceRecorded:
		return e.At
	}
	return time.Time{}
}
