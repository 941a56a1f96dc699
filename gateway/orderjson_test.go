package gateway

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/proto/pb"
)

// The hand-written order encoding must write the bytes encoding/json wrote
// before it: byte-identical rather than merely JSON-equal, so that nothing
// a client could observe changes, not the field order, not an escape, not
// the omission of an empty optional field.

// orderJSONOracle is the encoding the gateway used before: reflection over
// orderListJSON.
func orderJSONOracle(t testing.TB, l *pb.OrderList) []byte {
	data, err := json.Marshal(orderListView(l))
	require.NoError(t, err)
	return data
}

// strings that need escaping, or look as though they might: encoding/json
// escapes quotes, backslashes, control characters, <, > and & (for HTML),
// U+2028 and U+2029, and replaces invalid UTF-8.
var awkwardStrings = []string{
	`quote"d`, `back\slash`, "new\nline", "tab\tand\rreturn", "nul\x00", "bell\x07", "\x1f",
	"<script>", "a&b", "x>y", "é", "naïve £10", "\u2028\u2029", "\xff\xfe", "emoji \U0001F600",
	"/slash", "'single'", "\x7f", "",
}

func TestOrderJSONMatchesEncodingJSON(t *testing.T) {
	settled := &pb.OrderView{Id: "M000123-17", Type: "buy", Status: "settled", DealingDate: "2026-11-23",
		OriginalDealingDate: "2026-11-23", CreatedAt: "2026-11-20T09:15:00.123456789Z", MovementId: "M000123-16",
		Trades: []*pb.TradeView{{Id: "M000123-18", Asset: "GB00BD8R3K42", Side: "buy", Amount: "10.00", Status: "settled",
			ExecutedUnits: "0.0362", Price: "275.968400", Cash: "10.00", SettlementDate: "2026-11-27", BatchId: "B-2026-11-23-1"}},
		ContractNotes: []*pb.ContractNote{{TradeId: "M000123-18", DealingDate: "2026-11-23", Asset: "GB00BD8R3K42", Side: "buy",
			Units: "0.0362", UnitPrice: "275.968400", Consideration: "10.00", SettlementDate: "2026-11-27",
			BatchId: "B-2026-11-23-1"}}}
	rolled := &pb.OrderView{Id: "M000123-19", Type: "sell", Status: "accepted", DealingDate: "2026-12-01",
		OriginalDealingDate: "2026-11-30", CreatedAt: "2026-11-29T23:59:59Z",
		Trades: []*pb.TradeView{{Id: "M000123-20", Asset: "IE00B4L5Y983", Side: "sell", Units: "12.345678", Status: "accepted"}}}
	switched := &pb.OrderView{Id: "M000123-21", Type: "switch", Status: "executed", DealingDate: "2026-11-24",
		CreatedAt: "2026-11-24T10:00:00Z",
		Trades: []*pb.TradeView{
			{Id: "M000123-22", Asset: "GB00BD8R3K42", Side: "sell", Units: "1.0000", Status: "executed",
				ExecutedUnits: "1.0000", Price: "1.000000", Cash: "1.00", SettlementDate: "2026-11-28"},
			{Id: "M000123-23", Asset: "IE00B4L5Y983", Side: "buy", Status: "executed", ExecutedUnits: "0.000001",
				Price: "99999999.999999", Cash: "99.99", SettlementDate: "2026-11-28", BatchId: "B2"}},
		ContractNotes: []*pb.ContractNote{
			{TradeId: "M000123-22", DealingDate: "2026-11-24", Asset: "GB00BD8R3K42", Side: "sell", Units: "1.0000",
				UnitPrice: "1.000000", Consideration: "1.00", SettlementDate: "2026-11-28"},
			{TradeId: "M000123-23", DealingDate: "2026-11-24", Asset: "IE00B4L5Y983", Side: "buy", Units: "0.000001",
				UnitPrice: "99999999.999999", Consideration: "99.99", SettlementDate: "2026-11-28", BatchId: "B2"}}}
	bare := &pb.OrderView{} // every field empty: the required ones still written, as ""
	cases := map[string]*pb.OrderList{
		"empty page":             {},
		"empty page, next":       {NextAfter: "M000123-1"},
		"settled buy":            {Orders: []*pb.OrderView{settled}},
		"rolled sell":            {Orders: []*pb.OrderView{rolled}},
		"switch, two notes":      {Orders: []*pb.OrderView{switched}},
		"bare order":             {Orders: []*pb.OrderView{bare}},
		"a page with nextAfter":  {Orders: []*pb.OrderView{settled, rolled, switched, bare}, NextAfter: "M000123-17"},
		"trades without notes":   {Orders: []*pb.OrderView{{Id: "x", Trades: []*pb.TradeView{{}, {}}}}},
		"notes without trades":   {Orders: []*pb.OrderView{{Id: "x", ContractNotes: []*pb.ContractNote{{}}}}},
		"original without dates": {Orders: []*pb.OrderView{{Id: "x", OriginalDealingDate: "2026-11-30"}}},
	}
	for _, s := range awkwardStrings {
		cases[fmt.Sprintf("escapes %q", s)] = &pb.OrderList{NextAfter: s, Orders: []*pb.OrderView{everyField(s)}}
	}
	for name, l := range cases {
		require.Equal(t, string(orderJSONOracle(t, l)), string(appendOrderListJSON(nil, l)), name)
	}

	// Random orders: every status, type and side, each optional field
	// present or not, up to three trades, the awkward strings among the
	// ordinary ones.
	rng := rand.New(rand.NewPCG(1, 2))
	values := append([]string{"", "", "", "0.01", "10.00", "1234567.890123", "2026-11-23", "2026-11-20T09:15:00Z",
		"M000123-4", "GB00BD8R3K42"}, awkwardStrings...)
	pick := func(choices ...string) string { return choices[rng.IntN(len(choices))] }
	value := func() string { return pick(values...) }
	statuses := append([]string{"accepted", "cut_off", "executed", "settled", "cancelled", "rejected"}, values...)
	for i := range 2000 {
		l := &pb.OrderList{NextAfter: value()}
		for range rng.IntN(4) {
			o := &pb.OrderView{Id: value(), Type: pick("buy", "sell", "switch", "rebalance", value()), Status: pick(statuses...),
				DealingDate: value(), OriginalDealingDate: value(), CreatedAt: value(), MovementId: value()}
			if rng.IntN(3) == 0 {
				o.OriginalDealingDate = o.DealingDate
			}
			for range rng.IntN(4) {
				side := pick("buy", "sell", value())
				o.Trades = append(o.Trades, &pb.TradeView{Id: value(), Asset: value(), Side: side, Amount: value(), Units: value(),
					Status: pick(statuses...), ExecutedUnits: value(), Price: value(), Cash: value(), SettlementDate: value(),
					BatchId: value()})
				if rng.IntN(2) == 0 {
					o.ContractNotes = append(o.ContractNotes, &pb.ContractNote{TradeId: value(), DealingDate: value(),
						Asset: value(), Side: side, Units: value(), UnitPrice: value(), Consideration: value(),
						SettlementDate: value(), BatchId: value()})
				}
			}
			l.Orders = append(l.Orders, o)
		}
		require.Equal(t, string(orderJSONOracle(t, l)), string(appendOrderListJSON(nil, l)), "random list %d: %v", i, l)
	}
}

// everyField is an order, with a trade and a contract note, whose every
// string is s.
func everyField(s string) *pb.OrderView {
	return &pb.OrderView{Id: s, Type: s, Status: s, DealingDate: s, OriginalDealingDate: s + "x", CreatedAt: s, MovementId: s,
		Trades: []*pb.TradeView{{Id: s, Asset: s, Side: s, Amount: s, Units: s, Status: s, ExecutedUnits: s, Price: s, Cash: s,
			SettlementDate: s, BatchId: s}},
		ContractNotes: []*pb.ContractNote{{TradeId: s, DealingDate: s, Asset: s, Side: s, Units: s, UnitPrice: s,
			Consideration: s, SettlementDate: s, BatchId: s}}}
}

// benchOrderPage is a page of 50 settled buys, the page bench history's
// larger pots answer.
func benchOrderPage() *pb.OrderList {
	l := &pb.OrderList{NextAfter: "M000123-100"}
	for i := range 50 {
		id, trade := fmt.Sprintf("M000123-%d", 200-2*i), fmt.Sprintf("M000123-%d", 201-2*i)
		l.Orders = append(l.Orders, &pb.OrderView{Id: id, Type: "buy", Status: "settled", DealingDate: "2026-11-23",
			OriginalDealingDate: "2026-11-23", CreatedAt: "2026-11-20T09:15:00.123456789Z",
			Trades: []*pb.TradeView{{Id: trade, Asset: "GB00BD8R3K42", Side: "buy", Amount: "10.00", Status: "settled",
				ExecutedUnits: "0.0362", Price: "275.968400", Cash: "9.99", SettlementDate: "2026-11-27", BatchId: "B-2026-11-23-1"}},
			ContractNotes: []*pb.ContractNote{{TradeId: trade, DealingDate: "2026-11-23", Asset: "GB00BD8R3K42", Side: "buy",
				Units: "0.0362", UnitPrice: "275.968400", Consideration: "9.99", SettlementDate: "2026-11-27",
				BatchId: "B-2026-11-23-1"}}})
	}
	return l
}

// BenchmarkOrderPageJSON: a page of 50 orders to JSON, by reflection (as
// before) and by hand.
//
//	go test ./gateway -run XXX -bench OrderPageJSON
func BenchmarkOrderPageJSON(b *testing.B) {
	l := benchOrderPage()
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(orderListView(l)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appended", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendOrderListJSON(buf[:0], l)
		}
	})
}
