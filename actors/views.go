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

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
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
func (v viewer) order(o *domain.Order) *pb.OrderView {
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
