package domain

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStatementEntryForOnAPotWithoutItsClosedHistory proves the per-event
// step gives Statement's entries when the pot it reads drops its closed
// history after every event (what a read model keeps, and what a pot that
// forgets terminal work keeps): every entry equal, in order, with the same
// running balance, over three weeks with sells, a switch, a cancellation, a
// rebalance and a withdrawal raised by sells and paid.
func TestStatementEntryForOnAPotWithoutItsClosedHistory(t *testing.T) {
	day := MustDate("2026-11-23")
	s := newSim(t, day)
	const m = "M000011"
	s.mustDo(m, OpenPot{Key: "o", Profile: "balanced"})
	s.mustDo(m, Contribute{Key: "c", Amount: MustMoney("4000.00")})
	for i := range 16 {
		switch i {
		case 5:
			s.mustDo(m, PlaceOrder{Key: "sell", Order: OrderRequest{Type: OrderSell, Asset: globalEquity, Amount: MustMoney("100.00")}})
		case 6:
			s.mustDo(m, PlaceOrder{Key: "switch", Order: OrderRequest{Type: OrderSwitch, From: globalBonds, To: property,
				Percent: MustPercent("50")}})
		case 9:
			placed := s.mustDo(m, PlaceOrder{Key: "buy", Order: OrderRequest{Type: OrderBuy, Asset: ukEquity, Amount: MustMoney("10.00")}})
			s.mustDo(m, CancelOrder{Key: "cancel", OrderID: placed.Reply.RefID})
		case 10:
			s.mustDo(m, Withdraw{Key: "w", Amount: MustMoney("1500.00")})
		}
		s.cycle(day, prices("2.000000", "1.500000", "1.2345"), cycleOptions{rebalance: true})
		day = s.cal.NextDealingDay(day)
		s.setTime(day, 9, 0)
	}
	events := s.pots[m].events
	want := Statement(m, events, s.cat)
	kinds := map[string]int{}
	for _, e := range want {
		kinds[e.Kind]++
	}
	require.Equal(t, 1, kinds["withdrawal"], "the withdrawal was paid; kinds %v", kinds)
	require.NotZero(t, kinds["sell"], "kinds %v", kinds)

	p := NewPot(m)
	var got []StatementEntry
	var balance Money
	for _, e := range events {
		if entry, ok := StatementEntryFor(p, e, s.cat, balance); ok {
			got = append(got, entry)
			balance = entry.BalanceAfter
		}
		p.Apply(e)
		p.DropClosed()
	}
	require.Equal(t, want, got)
}
