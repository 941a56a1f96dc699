package actors

import (
	"slices"
	"time"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// Views: the API's representations of a pot, built from its state. Units
// are shown with the asset's unit places and prices with its price places,
// so a member sees "275.0000", not "275".

// viewer formats with the catalogue and decides cut-off with the dealing
// state of the moment.
type viewer struct {
	cat      *domain.Catalogue
	isCutOff func(domain.Date) bool
}

func (v viewer) unitPlaces(a domain.ISIN) int32 {
	if asset, ok := v.cat.Asset(a); ok {
		return asset.UnitDecimals
	}
	return domain.UnitDecimalsDefault
}

func (v viewer) pricePlaces(a domain.ISIN) int32 {
	if asset, ok := v.cat.Asset(a); ok {
		return asset.PriceDecimals
	}
	return domain.PriceDecimalsDefault
}

func (v viewer) units(a domain.ISIN, u domain.Units) string { return u.StringFixed(v.unitPlaces(a)) }

func (v viewer) price(a domain.ISIN, p domain.Price) string { return p.StringFixed(v.pricePlaces(a)) }

func dateString(d domain.Date) string { return d.String() }

// timeString is an instant as the API writes it: RFC 3339 in UTC, with
// the nanoseconds it has; "" for the zero time.
func timeString(t time.Time) string {
	var buf [len(time.RFC3339Nano)]byte
	return string(appendTime(buf[:0], t))
}

// pot is the pot view: cash, holdings valued at the latest prices.
func (v viewer) pot(p *domain.Pot, prices map[domain.ISIN]domain.PricePoint) *pb.PotView {
	view := &pb.PotView{
		MemberId: p.MemberID, RiskProfile: p.Profile, Version: p.Version, Currency: string(v.cat.Currency()),
		Cash: &pb.CashView{Available: p.Cash.Available.String(), Reserved: p.Cash.Reserved.String(), Pending: p.Cash.Pending.String()},
	}
	total := p.Cash.Available.Add(p.Cash.Reserved).Add(p.Cash.Pending)
	assets := make([]domain.ISIN, 0, len(p.Holdings))
	for a, h := range p.Holdings {
		if !h.Settled.IsZero() || !h.Pending.IsZero() {
			assets = append(assets, a)
		}
	}
	slices.Sort(assets)
	for _, a := range assets {
		h := p.Holdings[a]
		hv := &pb.HoldingView{Asset: string(a), SettledUnits: v.units(a, h.Settled), PendingUnits: v.units(a, h.Pending),
			ReservedUnits: v.units(a, h.Reserved)}
		if pp, ok := prices[a]; ok {
			value := domain.SellProceeds(h.Settled.Add(h.Pending), pp.Price)
			hv.Price, hv.PriceDate, hv.Value = v.price(a, pp.Price), dateString(pp.Date), value.String()
			total = total.Add(value)
		}
		view.Holdings = append(view.Holdings, hv)
	}
	view.TotalValue = total.String()
	return view
}

// order is the order view with its trades and the contract note of each
// executed trade.
//
// Its numbers, dates and times are written into one buffer and become one
// string that the fields share, rather than a string each: a page of 50
// orders made ~600 small strings, and their allocation and collection were
// a large part of what each order of a page cost (docs/performance.md, "A
// pot's cost and its history"). The text is what the values' String and
// StringFixed give.
func (v viewer) order(o *domain.Order) *pb.OrderView {
	var buf [256]byte
	var fields [16]viewField
	t := viewText{b: buf[:0], fields: fields[:0]}
	view, tvs, notes := newOrderView(len(o.Trades))
	*view = pb.OrderView{Id: o.ID, Type: o.Type.String(), Status: string(domain.OrderStatusAt(o, v.isCutOff)),
		MovementId: o.MovementID, Trades: view.Trades, ContractNotes: view.ContractNotes}
	t = t.field(&view.DealingDate, o.DealingDate.Append(t.b))
	if o.OriginalDealingDate.Equal(o.DealingDate) {
		t = t.same(&view.OriginalDealingDate, &view.DealingDate)
	} else {
		t = t.field(&view.OriginalDealingDate, o.OriginalDealingDate.Append(t.b))
	}
	t = t.field(&view.CreatedAt, appendTime(t.b, o.CreatedAt))
	for i, tr := range o.Trades {
		tv := &tvs[i]
		tv.Id, tv.Asset, tv.Side = tr.ID, string(tr.Asset), tr.Side.String()
		tv.Status = string(domain.TradeStatusAt(tr, o.DealingDate, v.isCutOff))
		if !tr.Cash.IsZero() {
			t = t.field(&tv.Amount, tr.Cash.Append(t.b))
		}
		if !tr.Units.IsZero() {
			t = t.field(&tv.Units, tr.Units.AppendFixed(t.b, v.unitPlaces(tr.Asset)))
		}
		if e := tr.Execution; e != nil {
			t = t.field(&tv.ExecutedUnits, e.Units.AppendFixed(t.b, v.unitPlaces(tr.Asset)))
			t = t.field(&tv.Price, e.Price.AppendFixed(t.b, v.pricePlaces(tr.Asset)))
			t = t.field(&tv.Cash, e.Cash.Append(t.b))
			t = t.field(&tv.SettlementDate, e.SettlementDate.Append(t.b))
			tv.BatchId = e.BatchID
			n := &notes[len(view.ContractNotes)]
			n.TradeId, n.Asset, n.Side, n.BatchId = tr.ID, tv.Asset, tv.Side, e.BatchID
			if e.DealingDate.Equal(o.DealingDate) {
				t = t.same(&n.DealingDate, &view.DealingDate)
			} else {
				t = t.field(&n.DealingDate, e.DealingDate.Append(t.b))
			}
			t = t.same(&n.Units, &tv.ExecutedUnits)
			t = t.same(&n.UnitPrice, &tv.Price)
			t = t.same(&n.Consideration, &tv.Cash)
			t = t.same(&n.SettlementDate, &tv.SettlementDate)
			view.ContractNotes = append(view.ContractNotes, n)
		}
		view.Trades = append(view.Trades, tv)
	}
	t.done()
	return view
}

// ClosedOrderView is the view of a closed order (domain.Order.Closed), whose
// status no longer depends on the day's cut-off: what the history renders
// once, when the order closes, for its pages of old orders.
func ClosedOrderView(cat *domain.Catalogue, o *domain.Order) *pb.OrderView {
	if !o.Closed() {
		panic("actors: ClosedOrderView of open order " + o.ID)
	}
	return viewer{cat: cat, isCutOff: domain.ClosedOrderCutOff}.order(o)
}

// orderViewOfOne is the view of an order of one trade, the common case,
// allocated at once rather than as five objects.
type orderViewOfOne struct {
	view   pb.OrderView
	trades [1]*pb.TradeView
	notes  [1]*pb.ContractNote
	trade  [1]pb.TradeView
	note   [1]pb.ContractNote
}

// newOrderView allocates an order view for n trades: the view, with its
// Trades and ContractNotes empty but of capacity n, and the trade views and
// contract notes they point to.
func newOrderView(n int) (*pb.OrderView, []pb.TradeView, []pb.ContractNote) {
	if n == 1 {
		one := new(orderViewOfOne)
		one.view.Trades, one.view.ContractNotes = one.trades[:0], one.notes[:0]
		return &one.view, one.trade[:], one.note[:]
	}
	view := &pb.OrderView{Trades: make([]*pb.TradeView, 0, n), ContractNotes: make([]*pb.ContractNote, 0, n)}
	return view, make([]pb.TradeView, n), make([]pb.ContractNote, n)
}

// viewText gathers a view's strings in one buffer: field records where each
// string ends, same that a field is another's string, and done makes the
// buffer one string and sets every recorded field to its piece. It is
// passed by value (t = t.field(…)) so that the buffer and the records can
// stay on the caller's stack: a store through a pointer would move them to
// the heap.
type viewText struct {
	b      []byte
	fields []viewField
}

type viewField struct {
	dst, same  *string // same: dst is what same is set to
	start, end int
}

// field records that dst is what was appended to the buffer since the last
// field: b is the buffer with it appended.
func (t viewText) field(dst *string, b []byte) viewText {
	t.fields = append(t.fields, viewField{dst: dst, start: len(t.b), end: len(b)})
	t.b = b
	return t
}

// same records that dst is the string of src, recorded before it.
func (t viewText) same(dst, src *string) viewText {
	t.fields = append(t.fields, viewField{dst: dst, same: src})
	return t
}

func (t viewText) done() {
	s := string(t.b)
	for _, f := range t.fields {
		if f.same != nil {
			*f.dst = *f.same
		} else {
			*f.dst = s[f.start:f.end]
		}
	}
}

// appendTime appends timeString(t) to b: the rule itself.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return t.UTC().AppendFormat(b, time.RFC3339Nano)
}

// movement is a contribution or withdrawal with its orders.
func (v viewer) movement(p *domain.Pot, m *domain.Movement) *pb.MovementView {
	view := &pb.MovementView{Id: m.ID, Kind: m.Kind.String(), Status: "accepted", Amount: m.Amount.String(),
		DealingDate: dateString(m.DealingDate)}
	if m.Kind == domain.Withdrawal && m.IsPaid() {
		view.Status, view.Paid = "paid", m.Paid.String()
	}
	for _, id := range m.OrderIDs {
		view.Orders = append(view.Orders, v.order(p.Orders[id]))
	}
	return view
}

// ordersPageMax bounds one page of GET /orders.
const ordersPageMax = 200
