package domain

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// StatementEntry is one line of a member's statement: cash or units that
// came into or left the pot.
type StatementEntry struct {
	At          time.Time
	Kind        string // "contribution", "withdrawal", "buy", "sell"
	Description string
	Cash        Money // into the pot (negative: out of it)
	Units       Units // of Asset, into the pot (negative: out of it)
	Asset       ISIN
	// BalanceAfter is the pot's cash (available, reserved and pending)
	// after the entry.
	BalanceAfter Money
}

// Statement replays a pot's events and lists what crossed its boundary: the
// postings to the outside accounts (the member, the market) seen from the
// pot's side. Its cash entries therefore add up to the pot's cash. The
// catalogue gives the places units and prices are written with.
func Statement(memberID string, events []Event, cat *Catalogue) []StatementEntry {
	p := NewPot(memberID)
	var out []StatementEntry
	var balance Money
	for _, e := range events {
		if entry, ok := StatementEntryFor(p, e, cat, balance); ok {
			out = append(out, entry)
			balance = entry.BalanceAfter
		}
		p.Apply(e)
	}
	return out
}

// StatementEntryFor is the statement entry of one event, if it crossed the
// pot's boundary: p is the pot before e (the caller applies e after), and
// balance the BalanceAfter of the pot's previous entry (zero before the
// first). It is Statement one event at a time, for a read model that
// projects the journal's feed and cannot replay the pot's whole stream per
// event (package history). It reads only what e touches, which is still
// open before e, so p may be a pot without its closed history
// (Pot.DropClosed).
func StatementEntryFor(p *Pot, e Event, cat *Catalogue, balance Money) (StatementEntry, bool) {
	var cash decimal.Decimal
	var units decimal.Decimal
	var asset ISIN
	crossed := false
	for _, ps := range Postings(p, e) {
		if ps.Account != AccountMember && ps.Account != AccountMarket {
			continue
		}
		crossed = true
		if ps.Asset == "" {
			cash = cash.Sub(ps.Amount) // the outside's loss is the pot's gain
		} else {
			units, asset = units.Sub(ps.Amount), ps.Asset
		}
	}
	if !crossed {
		return StatementEntry{}, false
	}
	entry := StatementEntry{At: eventTime(e), Cash: moneyRounded(cash), Units: Units{units}, Asset: asset}
	entry.BalanceAfter = balance.Add(entry.Cash)
	entry.Kind, entry.Description = describe(p, e, cat)
	return entry, true
}

// describe names an entry for people.
func describe(p *Pot, e Event, cat *Catalogue) (kind, description string) {
	switch e := e.(type) {
	case CashContributed:
		return "contribution", "Contribution " + e.MovementID
	case WithdrawalPaid:
		return "withdrawal", "Withdrawal " + e.MovementID + " paid"
	case TradeExecuted:
		t := p.Trades[e.TradeID]
		units, price := e.Units.String(), e.Price.String()
		if asset, ok := cat.Asset(t.Asset); ok {
			units, price = e.Units.StringFixed(asset.UnitDecimals), e.Price.StringFixed(asset.PriceDecimals)
		}
		return t.Side.String(), fmt.Sprintf("%s %s units of %s at %s (dealing day %s, batch %s)",
			map[Side]string{Buy: "Bought", Sell: "Sold"}[t.Side], units, t.Asset, price, e.DealingDate, e.BatchID)
	}
	return e.EventType(), e.EventType()
}
