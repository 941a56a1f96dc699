package codec

import (
	"bytes"
	"reflect"
	"testing"
	"time"
	_ "time/tzdata"

	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// decide decides cmd for p and applies its events; a refusal fails the
// test.
func decide(tb testing.TB, p *domain.Pot, cmd domain.Command, ctx *domain.Context) domain.Decision {
	tb.Helper()
	d, err := domain.Decide(p, cmd, ctx)
	if err != nil {
		tb.Fatalf("%T: %v", cmd, err)
	}
	for _, e := range d.Events {
		p.Apply(e)
	}
	return d
}

// potLife drives one pot through a life that produces every kind of pot
// event: open, contribute (invested), allocation, settlement, a sell that is
// cancelled, a buy that rolls, a switch (a proceeds-linked buy), a cash
// withdrawal, a profile change and a rebalance.
func potLife(t testing.TB) []domain.Event {
	t.Helper()
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	cal, err := domain.NewCalendar(domain.CalendarConfig{Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	cat := domain.DefaultCatalogue()
	day := domain.MustDate("2026-11-23")
	ctx := &domain.Context{Now: day.At(9, 0, loc), Catalogue: cat, Calendar: cal, Prices: map[domain.ISIN]domain.PricePoint{}}
	p := domain.NewPot("M000042")
	var events []domain.Event
	do := func(cmd domain.Command) domain.Decision {
		t.Helper()
		d := decide(t, p, cmd, ctx)
		events = append(events, d.Events...)
		return d
	}
	prices := map[domain.ISIN]domain.Price{}
	for i, a := range cat.Assets() {
		prices[a.ISIN] = domain.MustPrice([]string{"1.234567", "2.5", "0.987654", "10.0001", "3.3333", "1.5", "0.5"}[i%7])
	}
	// deal allocates every accepted trade of date d at prices and settles
	// what is due.
	deal := func(d domain.Date) {
		t.Helper()
		var trades []domain.DayTrade
		for _, id := range p.OrderIDs {
			o := p.Orders[id]
			if o.Cancelled || !o.DealingDate.Equal(d) {
				continue
			}
			for _, tr := range o.Trades {
				if tr.Status == domain.TradeAccepted {
					trades = append(trades, domain.DayTrade{MemberID: p.MemberID, OrderID: o.ID, TradeSpec: tr.Spec()})
				}
			}
		}
		allocs, _, err := domain.AllocateDay(trades, prices, func(a domain.ISIN) int32 {
			asset, _ := cat.Asset(a)
			return asset.UnitDecimals
		})
		if err != nil {
			t.Fatal(err)
		}
		var execs []domain.TradeExecuted
		for _, a := range allocs {
			asset, _ := cat.Asset(a.Asset)
			execs = append(execs, domain.TradeExecuted{TradeID: a.ID, DealingDate: d, Units: a.Units, Price: a.Price,
				Cash: a.Cash, SettlementDate: cal.SettlementDate(d, asset.SettlementDays), BatchID: domain.BatchID(d, a.Asset),
				ExecutionID: "x-" + domain.BatchID(d, a.Asset), At: ctx.Now})
		}
		if len(execs) > 0 {
			do(domain.AllocateTrades{DealingDate: d, Executions: execs})
		}
		for a, pr := range prices {
			ctx.Prices[a] = domain.PricePoint{Price: pr, Date: d}
		}
	}
	settleAll := func() {
		var ids []string
		for _, id := range p.OrderIDs {
			for _, tr := range p.Orders[id].Trades {
				if tr.Status == domain.TradeExecutedStatus {
					ids = append(ids, tr.ID)
				}
			}
		}
		if len(ids) > 0 {
			do(domain.SettleTrades{TradeIDs: ids})
		}
	}

	next := cal.NextDealingDay(day)
	after := cal.NextDealingDay(next)
	do(domain.OpenPot{Key: "k-open", Profile: "balanced"})
	do(domain.Contribute{Key: "k-pay", Amount: domain.MustMoney("1000.00")})
	deal(day)
	ctx.OpenFrom = next // day is cut off: new trades deal the next day
	settleAll()

	sell := do(domain.PlaceOrder{Key: "k-sell", Order: domain.OrderRequest{Type: domain.OrderSell,
		Asset: "GB00BN7Q2L69", Percent: domain.MustPercent("12.5")}})
	do(domain.CancelOrder{Key: "k-cancel", OrderID: sell.Reply.RefID})
	buy := do(domain.PlaceOrder{Key: "k-buy", Order: domain.OrderRequest{Type: domain.OrderBuy,
		Asset: "GB00BD8R3K42", Amount: domain.MustMoney("5.00")}})
	do(domain.RollOrder{OrderID: buy.Reply.RefID, From: next, To: after})
	do(domain.PlaceOrder{Key: "k-switch", Order: domain.OrderRequest{Type: domain.OrderSwitch,
		From: "IE00BF4W7M71", To: "GB00BK5V8P82", Units: domain.MustUnits("10")}})
	ctx.Now = next.At(12, 30, loc)
	deal(next)
	ctx.OpenFrom = after
	settleAll()
	ctx.Now = after.At(12, 30, loc)
	deal(after)
	settleAll()
	do(domain.Withdraw{Key: "k-out", Amount: domain.MustMoney("1.00")})
	do(domain.SetRiskProfile{Key: "k-profile", Profile: "adventurous"})
	prices["GB00BN7Q2L69"] = domain.MustPrice("9.0")
	do(domain.Rebalance{Date: after, Prices: prices})
	return events
}

// TestPotEventsRoundTrip proves every pot event survives its wire form:
// decode(encode(e)) encodes to the same bytes, and applying the decoded
// events gives the same state as applying the originals.
func TestPotEventsRoundTrip(t *testing.T) {
	events := potLife(t)
	seen := map[string]bool{}
	original, decoded := domain.NewPot("M000042"), domain.NewPot("M000042")
	for i, e := range events {
		typ, data, err := EncodePotEvent(e)
		if err != nil {
			t.Fatalf("event %d %T: encode: %v", i, e, err)
		}
		if typ != e.EventType() {
			t.Fatalf("event %d: encoded type %q, want %q", i, typ, e.EventType())
		}
		back, err := DecodePotEvent(typ, data)
		if err != nil {
			t.Fatalf("event %d %s: decode: %v", i, typ, err)
		}
		if reflect.TypeOf(back) != reflect.TypeOf(e) {
			t.Fatalf("event %d: decoded a %T from a %T", i, back, e)
		}
		_, again, err := EncodePotEvent(back)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("event %d %s: re-encoding differs (err %v)", i, typ, err)
		}
		original.Apply(e)
		decoded.Apply(back)
		if original.Canonical() != decoded.Canonical() {
			t.Fatalf("event %d %s: states differ after applying the decoded event:\n%s\nvs\n%s", i, typ, original.Canonical(), decoded.Canonical())
		}
		seen[typ] = true
	}
	all := []domain.Event{domain.PotOpened{}, domain.RequestRecorded{}, domain.CashContributed{}, domain.WithdrawalRequested{},
		domain.WithdrawalPaid{}, domain.OrderPlaced{}, domain.OrderCancelled{}, domain.OrderRolled{}, domain.TradeExecuted{},
		domain.TradeSettled{}, domain.RiskProfileSet{}, domain.RebalanceRecorded{}}
	var missing []string
	for _, e := range all {
		if !seen[e.EventType()] {
			missing = append(missing, e.EventType())
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the pot's life produced no %v: the round trip is not proven for them", missing)
	}
	if err := decoded.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeRefusesWhatItCannotRead proves a corrupt or unknown event is an
// error, never a guess.
func TestDecodeRefusesWhatItCannotRead(t *testing.T) {
	cases := []struct {
		name string
		typ  string
		data []byte
	}{
		{"unknown type", "pot.Unknown", nil},
		{"garbage payload", "pot.OrderPlaced", []byte{0xff, 0xff, 0xff}},
		{"malformed amount", "pot.CashContributed", mustMarshal(t, &pb.CashContributed{MovementId: "M1-1", Amount: "12.3.4"})},
		{"amount with too many places", "pot.CashContributed", mustMarshal(t, &pb.CashContributed{MovementId: "M1-1", Amount: "1.001"})},
		{"malformed date", "pot.OrderRolled", mustMarshal(t, &pb.OrderRolled{OrderId: "M1-1", FromDate: "2026-13-01"})},
		{"malformed price", "pot.TradeExecuted", mustMarshal(t, &pb.TradeExecuted{TradeId: "M1-2", Price: "-1"})},
	}
	for _, c := range cases {
		if e, err := DecodePotEvent(c.typ, c.data); err == nil {
			t.Errorf("%s: decoded %+v, want an error", c.name, e)
		}
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSystemEventsRoundTrip proves a system event survives its wire form
// and an unknown or malformed one is refused.
func TestSystemEventsRoundTrip(t *testing.T) {
	in := &pb.PricesPublished{Date: "2026-11-23", Prices: map[string]string{"GB00BN7Q2L69": "1.234567"}, AtUnixNano: 42}
	typ, data, err := EncodeSystemEvent(in)
	if err != nil || typ != "sys.PricesPublished" {
		t.Fatalf("encode: %q, %v", typ, err)
	}
	out, err := DecodeSystemEvent(typ, data)
	if err != nil || !proto.Equal(in, out) {
		t.Fatalf("decode: %v, %v", out, err)
	}
	for _, bad := range []struct{ typ string }{{"sys.NoSuchMessage"}, {"pot.OrderPlaced"}} {
		if _, err := DecodeSystemEvent(bad.typ, data); err == nil {
			t.Errorf("decoded %q", bad.typ)
		}
	}
	if _, err := DecodeSystemEvent("sys.PricesPublished", []byte{0xff}); err == nil {
		t.Errorf("decoded garbage")
	}
}
