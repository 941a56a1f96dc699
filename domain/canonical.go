package domain

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Canonical writes the pot's whole state as text in a fixed order, decimals
// by value and instants in UTC, so that two states are equal exactly when
// their canonical forms are: replay checks and divergence checks compare
// these.
func (p *Pot) Canonical() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	dec := func(d decimal.Decimal) string { return d.String() }
	w("pot %s profile=%q opened=%v at=%s version=%d seq=%d last-rebalance=%s", p.MemberID, p.Profile, p.Opened,
		p.OpenedAt.UTC().Format(time.RFC3339Nano), p.Version, p.Seq, p.LastRebalance)
	w("cash available=%s reserved=%s pending=%s", dec(p.Cash.Available.d), dec(p.Cash.Reserved.d), dec(p.Cash.Pending.d))
	for _, a := range slices.Sorted(maps.Keys(p.Holdings)) {
		h := p.Holdings[a]
		w("holding %s settled=%s reserved=%s pending=%s", a, dec(h.Settled.d), dec(h.Reserved.d), dec(h.Pending.d))
	}
	for _, id := range p.OrderIDs {
		o := p.Orders[id]
		w("order %s %s movement=%s created=%s date=%s original=%s cancelled=%v/%s", o.ID, o.Type, o.MovementID,
			o.CreatedAt.UTC().Format(time.RFC3339Nano), o.DealingDate, o.OriginalDealingDate, o.Cancelled, o.CancelledAt.UTC().Format(time.RFC3339Nano))
		for _, t := range o.Trades {
			w("  trade %s %s %s cash=%s units=%s funding=%v rc=%s ru=%s status=%d pending=%s settled=%s", t.ID, t.Asset, t.Side,
				dec(t.Cash.d), dec(t.Units.d), t.Funding, dec(t.ReservedCash.d), dec(t.ReservedUnits.d), t.Status,
				dec(t.PendingCash.d), t.SettledAt.UTC().Format(time.RFC3339Nano))
			if e := t.Execution; e != nil {
				w("    exec %s units=%s price=%s cash=%s settle=%s batch=%s id=%s at=%s", e.DealingDate, dec(e.Units.d), dec(e.Price.d),
					dec(e.Cash.d), e.SettlementDate, e.BatchID, e.ExecutionID, e.ExecutedAt.UTC().Format(time.RFC3339Nano))
			}
			if p.Trades[t.ID] != t {
				w("  trade %s not indexed", t.ID)
			}
		}
	}
	for _, id := range p.MovementIDs {
		m := p.Movements[id]
		w("movement %s %s amount=%s date=%s orders=%v cash=%s raised=%s paid=%s/%s", m.ID, m.Kind, dec(m.Amount.d), m.DealingDate,
			m.OrderIDs, dec(m.CashPart.d), dec(m.Raised.d), dec(m.Paid.d), m.PaidAt.UTC().Format(time.RFC3339Nano))
	}
	for _, r := range p.Requests {
		w("request %s %s %d %s %s", r.Key, r.Hash, r.Kind, r.RefID, r.At.UTC().Format(time.RFC3339Nano))
	}
	return b.String()
}
