package actors

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// settledBuyRecords are n settled buys of £10 as the history read model
// stores them (codec.EncodeOrder), the orders bench history's pots hold.
func settledBuyRecords(n int) [][]byte {
	records := make([][]byte, n)
	for i := range records {
		id := fmt.Sprintf("M000123-%d", 2*i+2)
		t := domain.NewTrade(id, domain.TradeSpec{ID: fmt.Sprintf("M000123-%d", 2*i+3), Asset: "GB00BD8R3K42", Side: domain.Buy,
			Cash: domain.MustMoney("10.00")})
		t.Status, t.SettledAt = domain.TradeSettledStatus, time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)
		t.Execution = &domain.Execution{DealingDate: domain.MustDate("2026-11-23"), Units: domain.MustUnits("3.6227"),
			Price: domain.MustPrice("2.760300"), Cash: domain.MustMoney("10.00"), SettlementDate: domain.MustDate("2026-11-27"),
			BatchID: "B-2026-11-23-GB00BD8R3K42", ExecutionID: "X-17", ExecutedAt: time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)}
		records[i] = codec.EncodeOrder(&domain.Order{ID: id, Type: domain.OrderBuy,
			CreatedAt:   time.Date(2026, 11, 20, 9, 15, 0, 123456789, time.UTC),
			DealingDate: domain.MustDate("2026-11-23"), OriginalDealingDate: domain.MustDate("2026-11-23"), Trades: []*domain.Trade{t}})
	}
	return records
}

// BenchmarkOrderPageViews: what a page of 50 orders costs between the
// history's bytes and the gateway, without Pebble: each order decoded
// (codec.DecodeOrder) and made a view (viewer.order).
//
//	go test ./actors -run XXX -bench OrderPageViews
func BenchmarkOrderPageViews(b *testing.B) {
	records := settledBuyRecords(50)
	v := viewer{cat: domain.DefaultCatalogue(), isCutOff: func(domain.Date) bool { return true }}
	b.ReportAllocs()
	for b.Loop() {
		list := &pb.OrderList{}
		for _, rec := range records {
			o, err := codec.DecodeOrder(rec)
			if err != nil {
				b.Fatal(err)
			}
			list.Orders = append(list.Orders, v.order(o))
		}
	}
}

// orderViewOracle is viewer.order as it was before its strings shared one
// buffer: a string per field, each from the values' String forms.
func orderViewOracle(v viewer, o *domain.Order) *pb.OrderView {
	view := &pb.OrderView{Id: o.ID, Type: o.Type.String(), Status: string(domain.OrderStatusAt(o, v.isCutOff)),
		DealingDate: dateString(o.DealingDate), OriginalDealingDate: dateString(o.OriginalDealingDate),
		CreatedAt: timeString(o.CreatedAt), MovementId: o.MovementID}
	for _, t := range o.Trades {
		tv := &pb.TradeView{Id: t.ID, Asset: string(t.Asset), Side: t.Side.String(),
			Status: string(domain.TradeStatusAt(t, o.DealingDate, v.isCutOff))}
		if !t.Cash.IsZero() {
			tv.Amount = t.Cash.String()
		}
		if !t.Units.IsZero() {
			tv.Units = v.units(t.Asset, t.Units)
		}
		if e := t.Execution; e != nil {
			tv.ExecutedUnits, tv.Price, tv.Cash = v.units(t.Asset, e.Units), v.price(t.Asset, e.Price), e.Cash.String()
			tv.SettlementDate, tv.BatchId = dateString(e.SettlementDate), e.BatchID
			view.ContractNotes = append(view.ContractNotes, &pb.ContractNote{TradeId: t.ID, DealingDate: dateString(e.DealingDate),
				Asset: string(t.Asset), Side: t.Side.String(), Units: tv.ExecutedUnits, UnitPrice: tv.Price,
				Consideration: e.Cash.String(), SettlementDate: tv.SettlementDate, BatchId: e.BatchID})
		}
		view.Trades = append(view.Trades, tv)
	}
	return view
}

// TestOrderViewMatchesOracle: the order view built in one buffer is the
// view built a string at a time, for orders of every type and status, with
// and without their optional parts, at the domain's precision, through the
// codec as the history serves them and straight from memory.
func TestOrderViewMatchesOracle(t *testing.T) {
	day, next := domain.MustDate("2026-11-23"), domain.MustDate("2026-11-24")
	exec := func(d domain.Date, units, price, cash string) *domain.Execution {
		return &domain.Execution{DealingDate: d, Units: domain.MustUnits(units), Price: domain.MustPrice(price),
			Cash: domain.MustMoney(cash), SettlementDate: d.AddDays(4), BatchID: "B-" + d.String(), ExecutionID: "X",
			ExecutedAt: d.At(16, 0, time.UTC)}
	}
	trade := func(id string, asset domain.ISIN, side domain.Side, cash, units string, status domain.TradeStatus,
		e *domain.Execution) *domain.Trade {
		spec := domain.TradeSpec{ID: id, Asset: asset, Side: side}
		if cash != "" {
			spec.Cash = domain.MustMoney(cash)
		}
		if units != "" {
			spec.Units = domain.MustUnits(units)
		}
		tr := domain.NewTrade("O", spec)
		tr.Status, tr.Execution = status, e
		return tr
	}
	created := time.Date(2026, 11, 20, 9, 15, 0, 123456789, time.UTC)
	orders := map[string]*domain.Order{
		"accepted buy": {ID: "M1-2", Type: domain.OrderBuy, CreatedAt: created, DealingDate: day, OriginalDealingDate: day,
			Trades: []*domain.Trade{trade("M1-3", "GB00BD8R3K42", domain.Buy, "10.00", "", domain.TradeAccepted, nil)}},
		"settled buy of a contribution": {ID: "M1-4", Type: domain.OrderBuy, MovementID: "M1-1", CreatedAt: created,
			DealingDate: day, OriginalDealingDate: day,
			Trades: []*domain.Trade{trade("M1-5", "GB00BD8R3K42", domain.Buy, "1000000000.00", "", domain.TradeSettledStatus,
				exec(day, "3623.1234", "276004.123456", "999999999.99"))}},
		"executed sell by units, rolled": {ID: "M1-6", Type: domain.OrderSell, CreatedAt: created, DealingDate: next,
			OriginalDealingDate: day, Trades: []*domain.Trade{trade("M1-7", "IE00B4L5Y983", domain.Sell, "", "12.5",
				domain.TradeExecutedStatus, exec(next, "12.5", "1e2", "1250"))}},
		"cancelled sell by cash": {ID: "M1-8", Type: domain.OrderSell, CreatedAt: created, DealingDate: day,
			OriginalDealingDate: day, Cancelled: true, CancelledAt: created.Add(time.Hour),
			Trades: []*domain.Trade{trade("M1-9", "IE00B4L5Y983", domain.Sell, "0.01", "", domain.TradeCancelled, nil)}},
		"switch, one leg executed": {ID: "M1-10", Type: domain.OrderSwitch, CreatedAt: created, DealingDate: day,
			OriginalDealingDate: day, Trades: []*domain.Trade{
				trade("M1-11", "GB00BD8R3K42", domain.Sell, "", "1", domain.TradeExecutedStatus, exec(day, "1", "2.5", "2.50")),
				trade("M1-12", "IE00B4L5Y983", domain.Buy, "", "", domain.TradeAccepted, nil)}},
		"rebalance, an execution on another day, an unknown asset": {ID: "M1-13", Type: domain.OrderRebalance,
			CreatedAt: created, DealingDate: day, OriginalDealingDate: day, Trades: []*domain.Trade{
				trade("M1-14", "XX0000000000", domain.Sell, "", "0.000001", domain.TradeSettledStatus,
					exec(next, "0.000001", "999999.999999", "1.00")),
				trade("M1-15", "GB00BD8R3K42", domain.Buy, "5.00", "", domain.TradeSettledStatus, exec(day, "2", "2.5", "5")),
				trade("M1-16", "IE00B4L5Y983", domain.Buy, "7.00", "", domain.TradeExecutedStatus, exec(day, "7", "1", "7.00"))}},
		"no trades, no dates, no time": {ID: "M1-17", Type: domain.OrderBuy},
		"no original date":             {ID: "M1-18", Type: domain.OrderBuy, CreatedAt: created, DealingDate: day},
		"a time not in UTC": {ID: "M1-19", Type: domain.OrderBuy, DealingDate: day, OriginalDealingDate: day,
			CreatedAt: time.Date(2026, 11, 20, 9, 15, 0, 0, time.FixedZone("X", 3600))},
	}
	cat := domain.DefaultCatalogue()
	for name, o := range orders {
		decoded, err := codec.DecodeOrder(codec.EncodeOrder(o))
		require.NoError(t, err, name)
		for _, cutOff := range []bool{false, true} {
			v := viewer{cat: cat, isCutOff: func(domain.Date) bool { return cutOff }}
			for form, o := range map[string]*domain.Order{"in memory": o, "decoded": decoded} {
				want, got := orderViewOracle(v, o), v.order(o)
				require.True(t, proto.Equal(want, got), "%s, %s, cut off %t:\nwant %v\ngot  %v", name, form, cutOff, want, got)
			}
		}
	}
}
