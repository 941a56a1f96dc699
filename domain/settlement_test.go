package domain

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTradesDue: a pot's executed trades fall due once the day before the
// given date has passed their settlement date; settling some (as
// reconciliation counts them, SettleThrough) moves their units and leaves
// the others due.
func TestTradesDue(t *testing.T) {
	s, mon, p := investedPot(t)
	const m = "M000001"
	require.Empty(t, p.TradesDue(MustDate("2027-01-01")), "accepted trades are never due")

	// Monday's buys: property (trade 3) and bonds (7) settle on Friday the
	// 27th, equity (5) on Thursday the 26th.
	s.cycle(mon, prices("2.000000", "1.500000", "1.2345"), cycleOptions{})
	for _, c := range []struct {
		before string
		want   []string
	}{
		{"2026-11-23", nil},
		{"2026-11-26", nil},
		{"2026-11-27", []string{"M000001-5"}},
		{"2026-11-28", []string{"M000001-3", "M000001-5", "M000001-7"}},
		{"2027-01-01", []string{"M000001-3", "M000001-5", "M000001-7"}},
	} {
		require.Equal(t, c.want, p.TradesDue(MustDate(c.before)), "due before %s", c.before)
	}
	require.False(t, p.SettlementPaysWithdrawal(p.TradesDue(MustDate("2027-01-01"))), "buys pay no withdrawal")

	settled := NewPot(m) // a copy: the same events
	for _, e := range s.pots[m].events {
		settled.Apply(e)
	}
	settled.SettleThrough(MustDate("2026-11-26"))
	wantUnits(t, "equity settled", settled.Holdings[globalEquity].Settled, "275")
	wantUnits(t, "equity pending", settled.Holdings[globalEquity].Pending, "0")
	wantUnits(t, "bonds pending", settled.Holdings[globalBonds].Pending, "233.333")
	require.Equal(t, []string{"M000001-3", "M000001-7"}, settled.TradesDue(MustDate("2027-01-01")), "still due")
	require.NoError(t, settled.CheckInvariants())
	wantUnits(t, "the pot itself: equity pending", p.Holdings[globalEquity].Pending, "275")
}

// TestSettlementPaysWithdrawal: a withdrawal's executed sells are the
// trades whose settlement cannot wait for the pot's next call.
func TestSettlementPaysWithdrawal(t *testing.T) {
	s, mon, p := investedPot(t)
	const m = "M000001"
	day := mon
	for range 4 { // to Friday: every buy executed and settled
		s.cycle(day, prices("2.000000", "1.500000", "1.2345"), cycleOptions{})
		day = s.cal.NextDealingDay(day)
	}
	s.cycle(day, prices("2.000000", "1.500000", "1.2345"), cycleOptions{})
	require.Empty(t, p.TradesDue(MustDate("2027-01-01")), "everything settled by Friday")

	next := s.cal.NextDealingDay(day)
	s.setTime(next, 9, 0)
	wd := s.mustDo(m, Withdraw{Key: "k3", Amount: MustMoney("100.00")})
	w := p.Movements[wd.Reply.RefID]
	require.NotEmpty(t, w.OrderIDs, "the withdrawal's sells")
	s.cycle(next, prices("2.000000", "1.500000", "1.2345"), cycleOptions{})
	due := p.TradesDue(MustDate("2027-01-01"))
	require.NotEmpty(t, due, "the sells, executed")
	require.True(t, p.SettlementPaysWithdrawal(due))
	require.False(t, p.SettlementPaysWithdrawal(nil))
	require.False(t, p.SettlementPaysWithdrawal([]string{"no-such-trade"}))
}

// investedPot is a balanced pot, M000001, that has contributed 1,000.00 on
// Monday 2026-11-23 before the cut-off: its buys are accepted.
func investedPot(t *testing.T) (*sim, Date, *Pot) {
	mon := MustDate("2026-11-23")
	s := newSim(t, mon)
	s.mustDo("M000001", OpenPot{Key: "k1", Profile: "balanced"})
	s.mustDo("M000001", Contribute{Key: "k2", Amount: MustMoney("1000.00")})
	return s, mon, s.pots["M000001"].p
}
