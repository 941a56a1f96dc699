package domain

import (
	"errors"
	"fmt"

	"github.com/shopspring/decimal"
)

// The pot's ledger: every event implies double-entry postings between the
// pot's own accounts and two outside ones, and the postings of each event
// balance (sum to zero) per commodity: cash, and each asset's units.
// Replaying the postings of a pot's events gives exactly its balances
// (CheckLedger), which is what internal reconciliation proves for every pot.
const (
	AccountAvailable = "available" // cash: free; units: settled and not reserved
	AccountReserved  = "reserved"  // cash for accepted buys and unpaid withdrawals; units for accepted sells
	AccountPending   = "pending"   // executed, not yet settled
	// AccountTransit holds a sell's proceeds on their way to the linked buys
	// that spend them; it is empty once the day's allocation is applied.
	AccountTransit = "transit"
	AccountMember  = "member" // outside: the member's own money
	AccountMarket  = "market" // outside: the day's dealing (the custodian, through the aggregators)
)

// Posting moves Amount into Account (negative: out of it) of one commodity:
// cash when Asset is "", else units of Asset.
type Posting struct {
	Account string
	Asset   ISIN
	Amount  decimal.Decimal
}

// Postings are the ledger postings of e, applied to p (the state before e).
func Postings(p *Pot, e Event) []Posting {
	var ps []Posting
	cash := func(account string, m Money) {
		if !m.IsZero() {
			ps = append(ps, Posting{Account: account, Amount: m.d})
		}
	}
	units := func(account string, asset ISIN, u Units) {
		if !u.IsZero() {
			ps = append(ps, Posting{Account: account, Asset: asset, Amount: u.d})
		}
	}
	move := func(from, to string, m Money) { cash(from, m.Neg()); cash(to, m) }
	moveUnits := func(from, to string, asset ISIN, u Units) { units(from, asset, u.Neg()); units(to, asset, u) }

	switch e := e.(type) {
	case CashContributed:
		move(AccountMember, AccountAvailable, e.Amount)
	case WithdrawalRequested:
		move(AccountAvailable, AccountReserved, e.CashPart)
	case WithdrawalPaid:
		m := p.Movements[e.MovementID]
		held := m.CashPart.Add(m.Raised)
		move(AccountReserved, AccountMember, e.Amount)
		move(AccountReserved, AccountAvailable, held.Sub(e.Amount))
	case OrderPlaced:
		for _, t := range e.Trades {
			move(AccountAvailable, AccountReserved, t.ReservedCash)
			moveUnits(AccountAvailable, AccountReserved, t.Asset, t.ReservedUnits)
		}
	case OrderCancelled:
		for _, t := range p.Orders[e.OrderID].Trades {
			if t.Status == TradeAccepted {
				move(AccountReserved, AccountAvailable, t.ReservedCash)
				moveUnits(AccountReserved, AccountAvailable, t.Asset, t.ReservedUnits)
			}
		}
	case TradeExecuted:
		t := p.Trades[e.TradeID]
		switch t.Side {
		case Buy:
			shares := p.linkedFunding(t).Sub(t.Cash)
			change := shares.Add(t.Cash).Sub(e.Cash)
			cash(AccountReserved, t.ReservedCash.Neg())
			cash(AccountTransit, shares.Neg())
			cash(AccountMarket, e.Cash)
			if t.IsLinked() {
				cash(AccountPending, change)
			} else {
				cash(AccountAvailable, change)
			}
			moveUnits(AccountMarket, AccountPending, t.Asset, e.Units)
		case Sell:
			shares := p.sharesOfProceeds(t, e.Cash)
			cash(AccountMarket, e.Cash.Neg())
			cash(AccountTransit, shares)
			cash(AccountPending, e.Cash.Sub(shares))
			units(AccountReserved, t.Asset, t.ReservedUnits.Neg())
			units(AccountAvailable, t.Asset, t.ReservedUnits.Sub(e.Units))
			units(AccountMarket, t.Asset, e.Units)
		}
	case TradeSettled:
		t := p.Trades[e.TradeID]
		if t.Side == Buy {
			moveUnits(AccountPending, AccountAvailable, t.Asset, t.Execution.Units)
		}
		to := AccountAvailable
		if m, ok := p.Movements[p.Orders[t.OrderID].MovementID]; ok && m.Kind == Withdrawal && t.Side == Sell {
			to = AccountReserved
		}
		move(AccountPending, to, t.PendingCash)
	}
	return ps
}

// Ledger is the balances of a pot's accounts, per commodity.
type Ledger map[LedgerKey]decimal.Decimal

// LedgerKey names one account of one commodity ("" asset: cash).
type LedgerKey struct {
	Account string
	Asset   ISIN
}

// Post adds postings to the ledger; it returns an error if they do not
// balance per commodity (and posts nothing then).
func (l Ledger) Post(ps []Posting) error {
	sums := map[ISIN]decimal.Decimal{}
	for _, p := range ps {
		sums[p.Asset] = sums[p.Asset].Add(p.Amount)
	}
	for asset, s := range sums {
		if !s.IsZero() {
			name := string(asset)
			if name == "" {
				name = "cash"
			}
			return fmt.Errorf("domain: postings of %s do not balance: off by %s", name, s)
		}
	}
	for _, p := range ps {
		k := LedgerKey{p.Account, p.Asset}
		l[k] = l[k].Add(p.Amount)
	}
	return nil
}

// CheckLedger compares the ledger built from a pot's events with the pot's
// balances: they must agree exactly, and nothing may be left in transit.
func (p *Pot) CheckLedger(l Ledger) error {
	var errs []error
	eq := func(what string, k LedgerKey, want decimal.Decimal) {
		if got := l[k]; !got.Equal(want) {
			errs = append(errs, fmt.Errorf("pot %s: ledger %s is %s, the pot says %s", p.MemberID, what, got, want))
		}
	}
	eq("available cash", LedgerKey{AccountAvailable, ""}, p.Cash.Available.d)
	eq("reserved cash", LedgerKey{AccountReserved, ""}, p.Cash.Reserved.d)
	eq("pending cash", LedgerKey{AccountPending, ""}, p.Cash.Pending.d)
	eq("cash in transit", LedgerKey{AccountTransit, ""}, decimal.Zero)
	for a, h := range p.Holdings {
		eq(string(a)+" available units", LedgerKey{AccountAvailable, a}, h.Available().d)
		eq(string(a)+" reserved units", LedgerKey{AccountReserved, a}, h.Reserved.d)
		eq(string(a)+" pending units", LedgerKey{AccountPending, a}, h.Pending.d)
	}
	for k, v := range l {
		if k.Asset != "" && k.Account != AccountMarket && !v.IsZero() {
			if _, ok := p.Holdings[k.Asset]; !ok {
				errs = append(errs, fmt.Errorf("pot %s: ledger has %s %s units of %s the pot does not hold", p.MemberID, v, k.Account, k.Asset))
			}
		}
	}
	return errors.Join(errs...)
}
