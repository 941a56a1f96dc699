package domain

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	globalEquity = ISIN("GB00BN7Q2L69") // unitDecimals 4, T+3
	globalBonds  = ISIN("IE00BF4W7M71") // unitDecimals 3, T+4
	property     = ISIN("GB00BK5V8P82") // priceDecimals 4, T+4
	ukEquity     = ISIN("GB00BD8R3K42")
)

func prices(eq, bonds, prop string) map[ISIN]Price {
	ps := map[ISIN]Price{globalEquity: MustPrice(eq), globalBonds: MustPrice(bonds), property: MustPrice(prop)}
	for _, a := range DefaultCatalogue().Assets() {
		if _, ok := ps[a.ISIN]; !ok {
			ps[a.ISIN] = MustPrice("1.000000")
		}
	}
	return ps
}

func wantMoney(t *testing.T, what string, got Money, want string) {
	t.Helper()
	if !got.Equal(MustMoney(want)) {
		t.Fatalf("%s = %s, want %s", what, got, want)
	}
}

func wantUnits(t *testing.T, what string, got Units, want string) {
	t.Helper()
	if !got.Equal(MustUnits(want)) {
		t.Fatalf("%s = %s, want %s", what, got, want)
	}
}

// TestMemberFirstWeek follows one balanced pot through a week: a contribution
// invested by the profile's weights, allocation at the day's prices,
// settlement T+3 and T+4, a price rise that drifts the pot out of band, and
// the same-day proceeds-linked rebalance that follows. Every number is worked
// out by hand in the comments.
func TestMemberFirstWeek(t *testing.T) {
	mon := MustDate("2026-11-23")
	s := newSim(t, mon)
	const m = "M000001"

	s.mustDo(m, OpenPot{Key: "k1", Profile: "balanced"})
	// 1000.00 in: 2% (20.00) stays cash, 980.00 is invested by the weights
	// (an empty pot: every asset is short of target by its weight).
	d := s.mustDo(m, Contribute{Key: "k2", Amount: MustMoney("1000.00")})
	p := s.pots[m].p
	mv := p.Movements[d.Reply.RefID]
	require.Len(t, mv.OrderIDs, 3, "orders the contribution made")
	wantMoney(t, "available", p.Cash.Available, "20.00")
	wantMoney(t, "reserved", p.Cash.Reserved, "980.00")
	for _, id := range mv.OrderIDs {
		o := p.Orders[id]
		require.Equal(t, mon.String(), o.DealingDate.String(), "order %s: dealing date (before the 11:00 cut-off)", id)
	}

	// Monday's prices. Equity: 550 / 2 = 275 units. Bonds (3 unit places):
	// 350 / 1.5 = 233.333…, 233.333 × 1.5 = 349.9995 → 350.00. Property:
	// 80 / 1.2345 = 64.80356… → 64.8035, costing 79.99992… → 80.00.
	s.cycle(mon, prices("2.000000", "1.500000", "1.2345"), cycleOptions{rebalance: true})
	wantUnits(t, "equity pending", p.Holdings[globalEquity].Pending, "275")
	wantUnits(t, "bonds pending", p.Holdings[globalBonds].Pending, "233.333")
	wantUnits(t, "property pending", p.Holdings[property].Pending, "64.8035")
	wantMoney(t, "available", p.Cash.Available, "20.00")
	wantMoney(t, "reserved", p.Cash.Reserved, "0.00")

	// Tuesday: equity 2.4 → 660 of 1110 is 59.46%, within 5 points of 55%.
	tue := s.cal.NextDealingDay(mon)
	s.cycle(tue, prices("2.400000", "1.500000", "1.2345"), cycleOptions{rebalance: true})
	if !p.LastRebalance.IsZero() {
		t.Fatalf("rebalanced on %s within band", p.LastRebalance)
	}

	// Wednesday: equity 3.0 → 825 of 1275 is 64.7%: out of band, but its
	// units settle only on Thursday (T+3), so nothing can be sold yet.
	wed := s.cal.NextDealingDay(tue)
	s.cycle(wed, prices("3.000000", "1.500000", "1.2345"), cycleOptions{rebalance: true})
	// Nothing to sell: no rebalance.
	require.True(t, p.LastRebalance.IsZero(), "last rebalance %s on Wednesday", p.LastRebalance)
	require.False(t, p.HasOpenTrades(), "open trades on Wednesday")

	// Thursday: equity settles. Target 55% of 1275 = 701.25, so sell
	// (825 − 701.25) / 3 = 41.25 units; bonds are 96.25 short of 446.25 and
	// property 22.00 short of 102.00. Cash (20.00) is below its 25.50
	// target, so the buys are funded only by the sale: fractions of the
	// estimated 123.75 proceeds, floored: 0.7777 and 0.1777.
	thu := s.cal.NextDealingDay(wed)
	s.cycle(thu, prices("3.000000", "1.500000", "1.2345"), cycleOptions{rebalance: true})
	wantUnits(t, "equity settled", p.Holdings[globalEquity].Settled, "275")
	require.Equal(t, thu.String(), p.LastRebalance.String(), "last rebalance")
	reb := p.Orders[p.OrderIDs[len(p.OrderIDs)-1]]
	require.Equal(t, OrderRebalance, reb.Type, "rebalance order: type")
	require.Len(t, reb.Trades, 3, "rebalance order: trades")
	require.Equal(t, s.cal.NextDealingDay(thu).String(), reb.DealingDate.String(), "rebalance order: dealing date")
	sell, propBuy, bondBuy := reb.Trades[0], reb.Trades[1], reb.Trades[2] // buys in ISIN order
	wantUnits(t, "rebalance sell", sell.Units, "41.25")
	require.Equal(t, globalEquity, sell.Asset, "rebalance sell: asset")
	require.Equal(t, globalBonds, bondBuy.Asset, "rebalance bond buy: asset")
	require.Equal(t, property, propBuy.Asset, "rebalance property buy: asset")
	require.Equal(t, "0.7777", bondBuy.Funding[0].Fraction.String(), "bond buy: funding fraction")
	require.Equal(t, "0.1777", propBuy.Funding[0].Fraction.String(), "property buy: funding fraction")

	// Friday: the sale raises 41.25 × 3 = 123.75. Bonds get
	// floor(0.7777 × 123.75) = 96.24 → 64.160 units; property
	// floor(0.1777 × 123.75) = 21.99 → 17.8128 units costing 21.9899… → 21.99.
	// 123.75 − 96.24 − 21.99 = 5.52 of the proceeds stays with the pot,
	// pending until the sale settles.
	fri := s.cal.NextDealingDay(thu)
	s.cycle(fri, prices("3.000000", "1.500000", "1.2345"), cycleOptions{})
	wantMoney(t, "sale proceeds", sell.Execution.Cash, "123.75")
	wantMoney(t, "bond buy cost", bondBuy.Execution.Cash, "96.24")
	wantUnits(t, "bond buy units", bondBuy.Execution.Units, "64.16")
	wantUnits(t, "property buy units", propBuy.Execution.Units, "17.8128")
	wantMoney(t, "property buy cost", propBuy.Execution.Cash, "21.99")
	wantMoney(t, "pending cash", p.Cash.Pending, "5.52")
	wantUnits(t, "equity settled", p.Holdings[globalEquity].Settled, "233.75")

	// A withdrawal of 100.00: 20.00 from cash at once, 80.00 raised by
	// sells; paid when they settle.
	s.setTime(s.cal.NextDealingDay(fri), 9, 0)
	wd := s.mustDo(m, Withdraw{Key: "k3", Amount: MustMoney("100.00")})
	w := p.Movements[wd.Reply.RefID]
	wantMoney(t, "withdrawal cash part", w.CashPart, "20.00")
	wantMoney(t, "available after withdrawal", p.Cash.Available, "0.00")
	require.NotEmpty(t, w.OrderIDs, "the withdrawal's sells")
	for day := s.cal.NextDealingDay(fri); w.PaidAt.IsZero(); day = s.cal.NextDealingDay(day) {
		s.cycle(day, prices("3.000000", "1.500000", "1.2345"), cycleOptions{})
	}
	wantMoney(t, "withdrawal paid", w.Paid, "100.00")
	s.checkHoldings()
	s.checkReplay()
}

// TestIdempotentRequests proves a repeated request (same key, same body)
// persists nothing and answers as the first did, and the same key with
// another body is refused.
func TestIdempotentRequests(t *testing.T) {
	s := newSim(t, MustDate("2026-11-23"))
	const m = "M000002"
	s.mustDo(m, OpenPot{Key: "open", Profile: ""})
	first := s.mustDo(m, Contribute{Key: "c1", Amount: MustMoney("50.00")})
	version := s.pots[m].p.Version
	again := s.mustDo(m, Contribute{Key: "c1", Amount: MustMoney("50.00")})
	require.True(t, again.Reply.Replayed, "repeat: replayed")
	require.Equal(t, first.Reply.RefID, again.Reply.RefID, "repeat: the first's refId")
	require.Empty(t, again.Events, "repeat: events")
	if s.pots[m].p.Version != version {
		t.Fatalf("repeat moved the version from %d to %d", version, s.pots[m].p.Version)
	}
	_, err := s.do(m, Contribute{Key: "c1", Amount: MustMoney("51.00")})
	require.ErrorIs(t, err, ErrIdempotencyConflict, "same key, other body")
	_, err = s.do(m, Contribute{Key: "", Amount: MustMoney("1.00")})
	require.ErrorIs(t, err, ErrInvalidCommand, "empty key")
	// After the retention the key is too old: refused, never applied twice,
	// while the pot still holds it and once it has forgotten it (the shell
	// then finds it in the member's history, Context.PastRequest).
	s.now = s.now.Add(RequestRetention + 1)
	_, err = s.do(m, Contribute{Key: "c1", Amount: MustMoney("50.00")})
	require.ErrorIs(t, err, ErrIdempotencyKeyExpired, "expired key the pot holds")
	s.mustDo(m, Contribute{Key: "c2", Amount: MustMoney("1.00")})
	_, remembered := s.pots[m].p.Request("c1")
	require.False(t, remembered, "c1 forgotten when c2 was recorded")
	_, err = s.do(m, Contribute{Key: "c1", Amount: MustMoney("50.00")})
	require.ErrorIs(t, err, ErrIdempotencyKeyExpired, "expired key found in the history")
	wantMoney(t, "available", s.pots[m].p.Cash.Available, "51.00")
	s.checkReplay()
}

// TestStatementAddsUpToThePot proves the statement lists every cash and
// unit movement across the pot's boundary: its cash adds up to the pot's
// cash, and its units to the pot's units, after a week of trading.
func TestStatementAddsUpToThePot(t *testing.T) {
	day := MustDate("2026-11-23")
	s := newSim(t, day)
	const m = "M000003"
	s.mustDo(m, OpenPot{Key: "o", Profile: "cautious"})
	s.mustDo(m, Contribute{Key: "c", Amount: MustMoney("2500.00")})
	for i := 0; i < 6; i++ {
		s.cycle(day, prices("2.000000", "1.500000", "1.2345"), cycleOptions{rebalance: true})
		day = s.cal.NextDealingDay(day)
		s.setTime(day, 9, 0)
	}
	s.mustDo(m, Withdraw{Key: "w", Amount: MustMoney("10.00")})
	p := s.pots[m].p
	entries := Statement(m, s.pots[m].events, s.cat)
	var cash Money
	units := map[ISIN]Units{}
	kinds := map[string]int{}
	for _, e := range entries {
		cash = cash.Add(e.Cash)
		if e.Asset != "" {
			units[e.Asset] = units[e.Asset].Add(e.Units)
		}
		kinds[e.Kind]++
	}
	held := p.Cash.Available.Add(p.Cash.Reserved).Add(p.Cash.Pending)
	last := entries[len(entries)-1].BalanceAfter
	require.True(t, cash.Equal(held), "statement cash %s, the pot holds %s", cash, held)
	require.True(t, last.Equal(held), "statement's last balance %s, the pot holds %s", last, held)
	for a, h := range p.Holdings {
		if want := h.Settled.Add(h.Pending); !units[a].Equal(want) {
			t.Fatalf("statement units of %s: %s, the pot holds %s", a, units[a], want)
		}
	}
	require.Equal(t, 1, kinds["contribution"], "statement entries of kind contribution; kinds %v", kinds)
	require.NotZero(t, kinds["buy"], "statement entries of kind buy; kinds %v", kinds)
	require.Equal(t, 1, kinds["withdrawal"], "statement entries of kind withdrawal; kinds %v", kinds)
}

// TestManyIdempotencyKeys proves a pot with more remembered keys than a
// scan serves (the index path) finds each, forgets them after the
// retention, and refuses a key reused after it expired as too old.
func TestManyIdempotencyKeys(t *testing.T) {
	s := newSim(t, MustDate("2026-11-23"))
	const m = "M000009"
	s.mustDo(m, OpenPot{Key: "open"})
	const n = 3 * requestIndexFrom
	first := map[string]string{}
	for i := range n {
		key := Key(fmt.Sprintf("c-%d", i))
		d := s.mustDo(m, Contribute{Key: key, Amount: MustMoney("1.00")})
		first[string(key)] = d.Reply.RefID
		s.now = s.now.Add(time.Minute)
	}
	p := s.pots[m].p
	for i := n - 1; i >= 0; i-- { // every key, through the index
		key := Key(fmt.Sprintf("c-%d", i))
		d := s.mustDo(m, Contribute{Key: key, Amount: MustMoney("1.00")})
		require.True(t, d.Reply.Replayed, "key %s: replayed", key)
		require.Equal(t, first[string(key)], d.Reply.RefID, "key %s: the first's refId", key)
	}
	_, err := s.do(m, Contribute{Key: "c-7", Amount: MustMoney("2.00")})
	require.ErrorIs(t, err, ErrIdempotencyConflict, "reused key with another body")
	// A week later every key is forgotten once a new request is recorded
	// (with the contributions they made: the pot keeps only what a key in
	// its window refers to), and an old key is refused as too old.
	s.now = s.now.Add(RequestRetention)
	s.mustDo(m, Contribute{Key: "fresh", Amount: MustMoney("1.00")})
	require.Len(t, p.Requests, 1, "keys remembered after the retention")
	require.Len(t, p.Movements, 1, "movements kept after the retention")
	_, err = s.do(m, Contribute{Key: "c-7", Amount: MustMoney("2.00")})
	require.ErrorIs(t, err, ErrIdempotencyKeyExpired, "expired key c-7")
	s.checkReplay()
}

// TestPotLimit: a pot holds at most PotValueMax, counting its cash
// (available, reserved and pending) and its units at the latest prices; a
// contribution past it is refused and changes nothing.
func TestPotLimit(t *testing.T) {
	s := newSim(t, MustDate("2026-11-23"))
	for _, c := range []struct {
		name  string
		first []string // contributions accepted first
		next  string
		ok    bool
	}{
		{"up to the limit at once", nil, "1000000000000.00", true},
		{"one penny past it", []string{"1000000000000.00"}, "0.01", false},
		{"to the limit in steps", []string{"600000000000.00"}, "400000000000.00", true},
		{"past it in steps", []string{"600000000000.00"}, "400000000000.01", false},
	} {
		m := "L" + fmt.Sprint(len(s.pots))
		s.mustDo(m, OpenPot{Key: "open", Profile: "balanced"})
		for i, a := range c.first {
			s.mustDo(m, Contribute{Key: Key(fmt.Sprint("c", i)), Amount: MustMoney(a)})
		}
		version := s.pots[m].p.Version
		_, err := s.do(m, Contribute{Key: "next", Amount: MustMoney(c.next)})
		if c.ok {
			assert.NoError(t, err, c.name)
		} else if assert.ErrorIs(t, err, ErrPotLimit, c.name) && s.pots[m].p.Version != version {
			t.Errorf("%s: the refusal moved the pot from version %d to %d", c.name, version, s.pots[m].p.Version)
		}
	}
	s.checkReplay()
}

// TestRebalanceDue: the sweep's pre-check is false exactly where Decide
// would answer a Rebalance with nothing, and true where it trades or refuses.
func TestRebalanceDue(t *testing.T) {
	mon, tue := MustDate("2026-11-23"), MustDate("2026-11-24")
	onTarget := func() *Pot {
		p := NewPot("M000001")
		p.Opened, p.Profile = true, "balanced"
		p.Cash.Available = MustMoney("20.00")
		p.Holdings[globalEquity] = &Holding{Settled: MustUnits("550")}
		p.Holdings[globalBonds] = &Holding{Settled: MustUnits("350")}
		p.Holdings[property] = &Holding{Settled: MustUnits("80")}
		return p
	}
	flat, equityDoubled := prices("1", "1", "1"), prices("2", "1", "1")
	noEquityPrice := prices("1", "1", "1")
	delete(noEquityPrice, globalEquity)
	cases := []struct {
		name   string
		change func(p *Pot)
		date   Date
		prices map[ISIN]Price
		want   bool
	}{
		{"on target", nil, tue, flat, false},
		{"out of band", nil, tue, equityDoubled, true},
		{"self-directed", func(p *Pot) { p.Profile = "" }, tue, equityDoubled, false},
		{"already rebalanced that day", func(p *Pot) { p.LastRebalance = tue }, tue, equityDoubled, false},
		{"rebalanced a day before", func(p *Pot) { p.LastRebalance = mon }, tue, equityDoubled, true},
		{"open trades", func(p *Pot) {
			o := &Order{ID: "M000001-9", DealingDate: tue, Trades: []*Trade{{ID: "M000001-10", OrderID: "M000001-9", Asset: ukEquity, Side: Buy, Status: TradeAccepted}}}
			p.Orders[o.ID], p.OrderIDs, p.Trades[o.Trades[0].ID] = o, []string{o.ID}, o.Trades[0]
		}, tue, equityDoubled, false},
		{"unknown profile (refused)", func(p *Pot) { p.Profile = "reckless" }, tue, flat, true},
		{"no price for a held asset (refused)", nil, tue, noEquityPrice, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := onTarget()
			if c.change != nil {
				c.change(p)
			}
			assert.Equal(t, c.want, RebalanceDue(p, DefaultCatalogue(), c.date, c.prices))
		})
	}
}

// TestPotKeepsOnlyOpenWork: a pot's state does not grow with its history.
// After months of contributions, orders and cycles it holds its open work
// and what a key still in its window refers to; everything closed before
// that has been retired, and replay agrees (checkReplay).
func TestPotKeepsOnlyOpenWork(t *testing.T) {
	day := MustDate("2026-11-23")
	s := newSim(t, day)
	const m = "M000011"
	s.mustDo(m, OpenPot{Key: "o", Profile: "balanced"})
	var placed int
	for i := range 120 {
		s.mustDo(m, Contribute{Key: Key(fmt.Sprintf("c%d", i)), Amount: MustMoney("100.00")})
		placed++
		s.cycle(day, prices("2.000000", "1.500000", "1.2345"), cycleOptions{rebalance: true})
		day = s.cal.NextDealingDay(day)
		s.setTime(day, 9, 0)
	}
	p := s.pots[m].p
	require.Greater(t, p.Seq, uint64(4*placed), "ids handed out")
	window := 0 // dealing days whose keys are still remembered
	for _, r := range p.Requests {
		if r.At.Add(RequestRetention).After(s.now) {
			window++
		}
	}
	// A contribution's orders settle within a few days; keys live a week.
	require.LessOrEqual(t, len(p.Requests), 7, "keys remembered")
	require.LessOrEqual(t, len(p.Movements), len(p.Requests), "movements kept")
	require.LessOrEqual(t, len(p.Orders), 4*len(p.Requests)+8, "orders kept after %d contributions", placed)
	for id, o := range p.Orders {
		keyed := false
		for _, r := range p.Requests {
			keyed = keyed || r.RefID == o.MovementID || r.RefID == id
		}
		require.True(t, !o.Closed() || keyed, "order %s closed and kept without a key", id)
	}
	require.Positive(t, window)
	s.checkReplay()
}

// A closed order's status is its trades' alone; an open order's asks the
// cut-off, which ClosedOrderCutOff refuses to answer.
func TestClosedOrderCutOff(t *testing.T) {
	order := func(cancelled bool, statuses ...TradeStatus) *Order {
		o := &Order{ID: "o", DealingDate: MustDate("2026-12-07"), Cancelled: cancelled}
		for _, s := range statuses {
			o.Trades = append(o.Trades, &Trade{Status: s})
		}
		return o
	}
	for _, tc := range []struct {
		name  string
		order *Order
		want  OrderStatus // "" if the order is open
	}{
		{"settled", order(false, TradeSettledStatus), OrderStatusSettled},
		{"settled and cancelled", order(false, TradeSettledStatus, TradeCancelled), OrderStatusCancelled},
		{"cancelled order", order(true, TradeCancelled, TradeCancelled), OrderStatusCancelled},
		{"accepted", order(false, TradeAccepted), ""},
		{"executed", order(false, TradeSettledStatus, TradeExecutedStatus), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want != "", tc.order.Closed())
			status := func() OrderStatus { return OrderStatusAt(tc.order, ClosedOrderCutOff) }
			if tc.want == "" {
				if tc.order.Trades[len(tc.order.Trades)-1].Status == TradeAccepted {
					assert.Panics(t, func() { status() })
				}
				return
			}
			assert.Equal(t, tc.want, status())
		})
	}
}

// TestTradesDueBy: executed trades settling on or before the date are due,
// in creation order; accepted, settled and cancelled trades never are.
func TestTradesDueBy(t *testing.T) {
	executed := func(id, settles string) *Trade {
		return &Trade{ID: id, Status: TradeExecutedStatus, Execution: &Execution{SettlementDate: MustDate(settles)}}
	}
	p := &Pot{
		OrderIDs: []string{"M-1", "M-2"},
		Orders: map[string]*Order{
			"M-1": {ID: "M-1", Trades: []*Trade{
				executed("M-3", "2026-11-26"),
				{ID: "M-4", Status: TradeAccepted},
				executed("M-5", "2026-11-27"),
			}},
			"M-2": {ID: "M-2", Trades: []*Trade{
				executed("M-6", "2026-11-25"),
				{ID: "M-7", Status: TradeSettledStatus, Execution: &Execution{SettlementDate: MustDate("2026-11-20")}},
				{ID: "M-8", Status: TradeCancelled},
			}},
		},
	}
	for _, c := range []struct {
		date string
		want []string
	}{
		{"2026-11-24", nil},
		{"2026-11-25", []string{"M-6"}},
		{"2026-11-26", []string{"M-3", "M-6"}},
		{"2026-11-27", []string{"M-3", "M-5", "M-6"}},
		{"2026-12-31", []string{"M-3", "M-5", "M-6"}},
	} {
		assert.Equal(t, c.want, p.TradesDueBy(MustDate(c.date)), "due by %s", c.date)
	}
}
