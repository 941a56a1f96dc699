package history_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
)

// life drives pots through the platform's steps with the domain's own
// rules (member commands, cut-off, netting and allocation, settlement,
// rebalancing), appending every decision's events to a real Pebble journal
// as the pot grains do: the journal the read model projects.
type life struct {
	t        testing.TB
	j        *pebble.Store
	cat      *domain.Catalogue
	cal      *domain.Calendar
	loc      *time.Location
	now      time.Time
	openFrom domain.Date
	prices   map[domain.ISIN]domain.PricePoint
	pots     map[string]*domain.Pot
}

// lifeGroups: three pot groups and the system group, as the platform
// spreads pots (all groups but the last).
const lifeGroups = 4

func newLife(t testing.TB, start domain.Date) *life {
	t.Helper()
	log, _ := testkit.Logger(t)
	j, err := pebble.Open(t.TempDir(), pebble.Options{Groups: lifeGroups, Logger: log})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, j.Close()) })
	loc, err := time.LoadLocation(domain.DefaultLocationName)
	require.NoError(t, err)
	cal, err := domain.NewCalendar(domain.CalendarConfig{Location: loc})
	require.NoError(t, err)
	l := &life{t: t, j: j, cat: domain.DefaultCatalogue(), cal: cal, loc: loc,
		prices: map[domain.ISIN]domain.PricePoint{}, pots: map[string]*domain.Pot{}}
	l.setTime(start, 9, 0)
	return l
}

// group is a member's pot group: FNV-1a of the id over all groups but the
// last, as actors.PotGroup spreads them.
func group(member string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(member))
	return h.Sum32() % (lifeGroups - 1)
}

func stream(member string) string { return "pot/" + member }

// setTime moves the clock to hour:minute of d, in UTC (as instants come
// back from the journal).
func (l *life) setTime(d domain.Date, hour, minute int) { l.now = d.At(hour, minute, l.loc).UTC() }

func (l *life) ctx() *domain.Context {
	return &domain.Context{Now: l.now, Catalogue: l.cat, Calendar: l.cal, Prices: l.prices, OpenFrom: l.openFrom}
}

func (l *life) pot(member string) *domain.Pot {
	p, ok := l.pots[member]
	if !ok {
		p = domain.NewPot(member)
		l.pots[member] = p
	}
	return p
}

// do decides cmds for member's pot one after another, each against the
// state the previous left, and appends their events in appends of at most
// persistence.AppendEventsMax, as a pot drains its mailbox.
func (l *life) do(member string, cmds ...domain.Command) []domain.Decision {
	l.t.Helper()
	p := l.pot(member)
	from := p.Version
	var decisions []domain.Decision
	var events []persistence.NewEvent
	for _, cmd := range cmds {
		d, err := domain.Decide(p, cmd, l.ctx())
		require.NoError(l.t, err, "%s: %T", member, cmd)
		for _, e := range d.Events {
			typ, data, err := codec.EncodePotEvent(e)
			require.NoError(l.t, err)
			events = append(events, persistence.NewEvent{Type: typ, Data: data})
			p.Apply(e)
		}
		decisions = append(decisions, d)
	}
	for chunk := range slices.Chunk(events, persistence.AppendEventsMax) {
		v, err := l.j.Append(context.Background(), persistence.AppendRequest{Stream: stream(member), Group: group(member),
			ExpectedVersion: from, Events: chunk})
		require.NoError(l.t, err, "append %s", member)
		from = v
	}
	require.Equal(l.t, p.Version, from, "%s: the journal's version and the pot's", member)
	return decisions
}

// members is the pots' ids in order.
func (l *life) members() []string { return slices.Sorted(maps.Keys(l.pots)) }

// dealingDay runs dealing day d at prices like the dealing cycle: settle
// what is due, cut off, allocate the day's trades (those of orders in roll
// go to the next dealing day instead), then rebalance the pots with a
// profile. It leaves the clock at 09:00 of the next dealing day.
func (l *life) dealingDay(d domain.Date, prices map[domain.ISIN]domain.Price, roll map[string]bool) {
	l.t.Helper()
	l.setTime(d, 12, 30)
	for _, m := range l.members() {
		p := l.pots[m]
		if due := p.TradesDueBy(d); len(due) > 0 {
			l.do(m, domain.SettleTrades{TradeIDs: due})
		}
	}
	next := l.cal.NextDealingDay(d)
	l.openFrom = next
	var trades []domain.DayTrade
	for _, m := range l.members() {
		p := l.pots[m]
		for _, id := range p.OrderIDs {
			o := p.Orders[id]
			if o.Cancelled || !o.DealingDate.Equal(d) || o.Trades[0].Status != domain.TradeAccepted {
				continue
			}
			if roll[o.ID] {
				l.do(m, domain.RollOrder{OrderID: o.ID, From: d, To: next})
				continue
			}
			for _, t := range o.Trades {
				trades = append(trades, domain.DayTrade{MemberID: m, OrderID: o.ID, TradeSpec: t.Spec()})
			}
		}
	}
	unitDecimals := func(a domain.ISIN) int32 { asset, _ := l.cat.Asset(a); return asset.UnitDecimals }
	allocs, _, err := domain.AllocateDay(trades, prices, unitDecimals)
	require.NoError(l.t, err, "allocate %s", d)
	byMember := map[string][]domain.TradeExecuted{}
	for _, a := range allocs {
		asset, _ := l.cat.Asset(a.Asset)
		byMember[a.MemberID] = append(byMember[a.MemberID], domain.TradeExecuted{
			TradeID: a.ID, DealingDate: d, Units: a.Units, Price: a.Price, Cash: a.Cash,
			SettlementDate: l.cal.SettlementDate(d, asset.SettlementDays),
			BatchID:        domain.BatchID(d, a.Asset), ExecutionID: "exec-" + domain.BatchID(d, a.Asset), At: l.now,
		})
	}
	for _, m := range slices.Sorted(maps.Keys(byMember)) {
		l.do(m, domain.AllocateTrades{DealingDate: d, Executions: byMember[m]})
	}
	for a, p := range prices {
		l.prices[a] = domain.PricePoint{Price: p, Date: d}
	}
	// The system group's streams are in the feed too (the read model only
	// passes over them).
	_, err = l.j.Append(context.Background(), persistence.AppendRequest{Stream: "prices/" + d.String(), Group: lifeGroups - 1,
		Events: []persistence.NewEvent{{Type: "prices.Recorded", Data: []byte(d.String())}}})
	require.NoError(l.t, err)
	for _, m := range l.members() {
		if l.pots[m].Opened && l.pots[m].Profile != "" {
			l.do(m, domain.Rebalance{Date: d, Prices: prices})
		}
	}
	l.setTime(next, 9, 0)
}

// dayPrices is every asset's price on the i-th day of a life: the equity
// fund rises and falls enough to push profiled pots out of band.
func (l *life) dayPrices(i int) map[domain.ISIN]domain.Price {
	ps := map[domain.ISIN]domain.Price{}
	for k, a := range l.cat.Assets() {
		ps[a.ISIN] = domain.MustPrice([]string{"1.234567", "2.5", "0.987654", "10.0001", "3.3333", "1.5", "0.5"}[k%7])
	}
	if i%4 >= 2 {
		ps["GB00BN7Q2L69"] = domain.MustPrice("1.9")
	}
	return ps
}

// Members of the life, each with a habit.
const (
	balanced   = "M000101" // a profile; sells, a switch, a cancelled buy, a withdrawal raised by sells, a new profile
	selfDirect = "M000102" // no profile: its own buys every day, sells later
	cautious   = "M000103" // a profile; weekly contributions, withdrawals paid from cash
	rolled     = "M000104" // a profile; an order that reaches its aggregator late and rolls
	idle       = "M000105" // opened, nothing else
)

// liveLife drives five pots through days dealing days (at least 12, so
// that the pots forget their first idempotency keys), calling between
// days after (nil: nothing), and returns the life.
func liveLife(t testing.TB, days int, after func(l *life, day int)) *life {
	t.Helper()
	require.GreaterOrEqual(t, days, 12)
	day := domain.MustDate("2026-11-23")
	l := newLife(t, day)
	key := func(m string, i int, what string) domain.Key { return domain.Key(fmt.Sprintf("%s-%d-%s", m, i, what)) }
	money := domain.MustMoney
	roll := map[string]bool{}
	for i := range days {
		switch i {
		case 0:
			l.do(balanced, domain.OpenPot{Key: key(balanced, i, "open"), Profile: "balanced"},
				domain.Contribute{Key: key(balanced, i, "pay"), Amount: money("5000.00")})
			l.do(selfDirect, domain.OpenPot{Key: key(selfDirect, i, "open")},
				domain.Contribute{Key: key(selfDirect, i, "pay"), Amount: money("3000.00")})
			l.do(cautious, domain.OpenPot{Key: key(cautious, i, "open"), Profile: "cautious"})
			l.do(rolled, domain.OpenPot{Key: key(rolled, i, "open"), Profile: "adventurous"},
				domain.Contribute{Key: key(rolled, i, "pay"), Amount: money("800.00")})
			l.do(idle, domain.OpenPot{Key: key(idle, i, "open")})
		case 5:
			l.do(balanced, domain.PlaceOrder{Key: key(balanced, i, "sell"), Order: domain.OrderRequest{Type: domain.OrderSell,
				Asset: "GB00BN7Q2L69", Amount: money("100.00")}})
			d := l.do(rolled, domain.Contribute{Key: key(rolled, i, "pay"), Amount: money("200.00")})
			for _, id := range l.pots[rolled].Movements[d[0].Reply.RefID].OrderIDs {
				roll[id] = true
			}
		case 6:
			l.do(balanced, domain.PlaceOrder{Key: key(balanced, i, "switch"), Order: domain.OrderRequest{Type: domain.OrderSwitch,
				From: "IE00BF4W7M71", To: "GB00BK5V8P82", Percent: domain.MustPercent("50")}})
			l.do(selfDirect, domain.PlaceOrder{Key: key(selfDirect, i, "sell"), Order: domain.OrderRequest{Type: domain.OrderSell,
				Asset: "GB00BD8R3K42", Units: domain.MustUnits("10")}})
		case 9:
			placed := l.do(balanced, domain.PlaceOrder{Key: key(balanced, i, "buy"), Order: domain.OrderRequest{Type: domain.OrderBuy,
				Asset: "GB00BD8R3K42", Amount: money("10.00")}})
			l.do(balanced, domain.CancelOrder{Key: key(balanced, i, "cancel"), OrderID: placed[0].Reply.RefID})
		case 10:
			l.do(balanced, domain.Withdraw{Key: key(balanced, i, "out"), Amount: money("1500.00")})
			l.do(cautious, domain.Withdraw{Key: key(cautious, i, "out"), Amount: money("5.00")})
		case 11:
			l.do(balanced, domain.SetRiskProfile{Key: key(balanced, i, "profile"), Profile: "cautious"})
		}
		if i < days-6 && i <= 5 {
			l.do(selfDirect, domain.PlaceOrder{Key: key(selfDirect, i, "buy"), Order: domain.OrderRequest{Type: domain.OrderBuy,
				Asset: []domain.ISIN{"GB00BD8R3K42", "GB00BN7Q2L69", "IE00BF4W7M71"}[i%3], Amount: money("150.00")}})
		}
		if i%5 == 0 && i < days-6 {
			l.do(cautious, domain.Contribute{Key: key(cautious, i, "pay"), Amount: money("250.00")})
		}
		l.dealingDay(day, l.dayPrices(i), roll)
		day = l.cal.NextDealingDay(day)
		if after != nil {
			after(l, i)
		}
	}
	return l
}

// streamEvents reads member's whole stream back from the journal, decoded.
func (l *life) streamEvents(member string) ([]persistence.Event, []domain.Event) {
	l.t.Helper()
	raw, err := l.j.Read(context.Background(), stream(member), 1, 0)
	require.NoError(l.t, err)
	events := make([]domain.Event, len(raw))
	for i, e := range raw {
		events[i], err = codec.DecodePotEvent(e.Type, e.Data)
		require.NoError(l.t, err)
	}
	return raw, events
}
