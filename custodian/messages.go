package custodian

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// The messages of the protocol in their domain form, and the checks both
// sides make: each side validates what it writes and what it reads, with the
// same functions.

// Order is a custodian order in domain form.
type Order struct {
	ClOrdID     string // domain.BatchID(DealingDate, Asset.ISIN)
	DealingDate domain.Date
	Asset       domain.Asset
	Side        domain.Side
	Units       domain.Units // positive, with the asset's unit decimals
}

// NewOrder is the order for an asset's net units (Σ buys − Σ sells) of a
// dealing day: a buy when positive, a sell of the absolute units when
// negative, and ErrNothingToOrder when zero (buys and sells cancel out, and
// the day's trades are allocated at the day's price with no custodian
// order).
func NewOrder(cat *domain.Catalogue, day domain.Date, asset domain.ISIN, netUnits domain.Units) (*pb.CustodianOrder, error) {
	a, ok := cat.Asset(asset)
	if !ok {
		return nil, fmt.Errorf("%w: asset %s is not in the catalogue", ErrInvalidOrder, asset)
	}
	if day.IsZero() {
		return nil, fmt.Errorf("%w: no dealing date", ErrInvalidOrder)
	}
	side := pb.Side_SIDE_BUY
	switch netUnits.Sign() {
	case 0:
		return nil, fmt.Errorf("%w: %s on %s", ErrNothingToOrder, asset, day)
	case -1:
		side = pb.Side_SIDE_SELL
	}
	// Formatting with the asset's places would round; refuse instead.
	if _, err := domain.UnitsFromDecimal(netUnits.Abs().Decimal(), a.UnitDecimals); err != nil {
		return nil, fmt.Errorf("%w %s on %s: %w", ErrInvalidOrder, asset, day, err)
	}
	o := &pb.CustodianOrder{
		ClOrdId:     domain.BatchID(day, asset),
		DealingDate: day.String(),
		Asset:       string(asset),
		Side:        side,
		Units:       netUnits.Abs().StringFixed(a.UnitDecimals),
	}
	if _, err := ParseOrder(cat, o); err != nil {
		return nil, err // too large
	}
	return o, nil
}

// ParseOrder checks an order against the protocol and the catalogue: a known
// asset, a dealing date, a side, positive units with at most the asset's
// unit decimals, and cl_ord_id = "<dealing date>-<ISIN>". It does not know
// the calendar: the custodian also refuses a date that is not a dealing day.
func ParseOrder(cat *domain.Catalogue, o *pb.CustodianOrder) (Order, error) {
	bad := func(format string, args ...any) (Order, error) {
		return Order{}, fmt.Errorf("%w %q: "+format, append([]any{ErrInvalidOrder, o.GetClOrdId()}, args...)...)
	}
	a, ok := cat.Asset(domain.ISIN(o.GetAsset()))
	if !ok {
		return bad("asset %q is not in the catalogue", o.GetAsset())
	}
	day, err := domain.ParseDate(o.GetDealingDate())
	if err != nil {
		return bad("dealing date: %w", err)
	}
	if want := domain.BatchID(day, a.ISIN); o.GetClOrdId() != want {
		return bad("client order id: want %q", want)
	}
	side := domain.Side(o.GetSide())
	if side != domain.Buy && side != domain.Sell {
		return bad("side %v: want buy or sell", o.GetSide())
	}
	units, err := domain.ParseTotalUnits(o.GetUnits(), a.UnitDecimals)
	if err != nil {
		return bad("%w", err)
	}
	return Order{ClOrdID: o.GetClOrdId(), DealingDate: day, Asset: a, Side: side, Units: units}, nil
}

// SameTerms reports whether a repeat of an order has the executed order's
// terms (units compared as numbers: "1.5" is "1.5000").
func (o Order) SameTerms(r *pb.CustodianOrder) bool {
	u, err := decimal.NewFromString(r.GetUnits())
	return err == nil && r.GetAsset() == string(o.Asset.ISIN) && r.GetDealingDate() == o.DealingDate.String() &&
		domain.Side(r.GetSide()) == o.Side && u.Equal(o.Units.Decimal())
}

// Execution is an execution report in domain form.
type Execution struct {
	ClOrdID        string
	OrderID        string // the custodian's id of the order
	ExecutionID    string // the custodian's id of the execution: ACME dedupes by it
	Asset          domain.ISIN
	Side           domain.Side
	Units          domain.Units
	Price          domain.Price
	Cash           domain.Money // roundHalfEven(Units × Price, 2): domain.NetOrderCash
	DealingDate    domain.Date
	SettlementDate domain.Date
}

// ParseExecutionReport checks a report against the protocol, the catalogue
// and the rounding rule, and returns it in domain form: a known asset, ids
// present, cl_ord_id = "<dealing date>-<ISIN>", a side, positive units and
// price within the asset's decimals, cash exactly domain.NetOrderCash(units,
// price), and a settlement date not before the dealing date. ACME checks
// every report with it before booking: a custodian's arithmetic is verified,
// not trusted.
func ParseExecutionReport(cat *domain.Catalogue, r *pb.ExecutionReport) (Execution, error) {
	bad := func(format string, args ...any) (Execution, error) {
		return Execution{}, fmt.Errorf("%w %q: "+format, append([]any{ErrInvalidReport, r.GetExecutionId()}, args...)...)
	}
	if r.GetExecutionId() == "" || r.GetOrderId() == "" {
		return bad("execution id and order id are required")
	}
	a, ok := cat.Asset(domain.ISIN(r.GetAsset()))
	if !ok {
		return bad("asset %q is not in the catalogue", r.GetAsset())
	}
	day, err := domain.ParseDate(r.GetDealingDate())
	if err != nil {
		return bad("dealing date: %w", err)
	}
	if want := domain.BatchID(day, a.ISIN); r.GetClOrdId() != want {
		return bad("client order id %q: want %q", r.GetClOrdId(), want)
	}
	side := domain.Side(r.GetSide())
	if side != domain.Buy && side != domain.Sell {
		return bad("side %v: want buy or sell", r.GetSide())
	}
	units, err := domain.ParseTotalUnits(r.GetUnits(), a.UnitDecimals)
	if err != nil {
		return bad("%w", err)
	}
	price, err := domain.ParsePrice(r.GetPrice(), a.PriceDecimals)
	if err != nil {
		return bad("%w", err)
	}
	// Cash may be zero: a net order of a few ten-thousandths of a unit
	// can cost less than half a penny.
	cash, err := parseCash(r.GetCash())
	if err != nil {
		return bad("%w", err)
	}
	if want := domain.NetOrderCash(units, price); !cash.Equal(want) {
		return bad("cash %s: %s units at %s is %s (roundHalfEven to pennies)", cash, units, price, want)
	}
	settle, err := domain.ParseDate(r.GetSettlementDate())
	if err != nil {
		return bad("settlement date: %w", err)
	}
	if settle.Before(day) {
		return bad("settlement date %s is before the dealing date %s", settle, day)
	}
	return Execution{
		ClOrdID: r.GetClOrdId(), OrderID: r.GetOrderId(), ExecutionID: r.GetExecutionId(),
		Asset: a.ISIN, Side: side, Units: units, Price: price, Cash: cash,
		DealingDate: day, SettlementDate: settle,
	}, nil
}

// Holding is one asset's line of a holdings statement in domain form. Units
// are signed (a sell reduces them); cash is from ACME's point of view: a buy
// pays (−), a sell receives (+).
type Holding struct {
	Asset        domain.ISIN
	SettledUnits domain.Units
	PendingUnits domain.Units
	SettledCash  domain.Money
	PendingCash  domain.Money
}

// ParseHoldingsStatement checks a statement (dates, assets of the catalogue
// and listed once, numbers within the assets' decimals) and returns it in
// domain form, by asset.
func ParseHoldingsStatement(cat *domain.Catalogue, st *pb.HoldingsStatement) (domain.Date, map[domain.ISIN]Holding, error) {
	bad := func(format string, args ...any) (domain.Date, map[domain.ISIN]Holding, error) {
		return domain.Date{}, nil, fmt.Errorf("custodian: holdings statement as of %q: "+format, append([]any{st.GetAsOf()}, args...)...)
	}
	asOf, err := domain.ParseDate(st.GetAsOf())
	if err != nil {
		return bad("%w", err)
	}
	out := make(map[domain.ISIN]Holding, len(st.GetHoldings()))
	for _, l := range st.GetHoldings() {
		a, ok := cat.Asset(domain.ISIN(l.GetAsset()))
		if !ok {
			return bad("asset %q is not in the catalogue", l.GetAsset())
		}
		if _, dup := out[a.ISIN]; dup {
			return bad("asset %s listed twice", a.ISIN)
		}
		h := Holding{Asset: a.ISIN}
		var errs [4]error
		h.SettledUnits, errs[0] = signedUnits(l.GetSettledUnits(), a.UnitDecimals)
		h.PendingUnits, errs[1] = signedUnits(l.GetPendingUnits(), a.UnitDecimals)
		h.SettledCash, errs[2] = signedMoney(l.GetSettledCash())
		h.PendingCash, errs[3] = signedMoney(l.GetPendingCash())
		for _, err := range errs {
			if err != nil {
				return bad("%s: %w", a.ISIN, err)
			}
		}
		out[a.ISIN] = h
	}
	return asOf, out, nil
}

// parseCash parses a non-negative amount with at most 2 places, written
// without sign or exponent ("0.00", "12.5").
func parseCash(s string) (domain.Money, error) {
	if s == "" || strings.ContainsAny(s, "+-eE") {
		return domain.Money{}, fmt.Errorf("cash %q: want digits and at most one decimal point", s)
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return domain.Money{}, fmt.Errorf("cash %q: %w", s, err)
	}
	return domain.MoneyFromDecimal(d)
}

func signedUnits(s string, places int32) (domain.Units, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return domain.Units{}, fmt.Errorf("units %q: %w", s, err)
	}
	return domain.UnitsFromDecimal(d, places)
}

func signedMoney(s string) (domain.Money, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return domain.Money{}, fmt.Errorf("cash %q: %w", s, err)
	}
	return domain.MoneyFromDecimal(d)
}

// encodePriceFeed is the feed message of date's prices, each written with
// its asset's price decimals. Every asset must be in the catalogue and every
// price within its asset's decimals.
func encodePriceFeed(cat *domain.Catalogue, date domain.Date, prices map[domain.ISIN]domain.Price) (*pb.PriceFeed, error) {
	if date.IsZero() {
		return nil, fmt.Errorf("%w: no date", ErrInvalidPrices)
	}
	f := &pb.PriceFeed{Date: date.String(), Prices: make(map[string]string, len(prices))}
	for _, isin := range slices.Sorted(maps.Keys(prices)) {
		a, ok := cat.Asset(isin)
		if !ok {
			return nil, fmt.Errorf("%w %s: asset %s is not in the catalogue", ErrInvalidPrices, date, isin)
		}
		p := prices[isin]
		s := p.StringFixed(a.PriceDecimals)
		// The round trip refuses a zero price and one with more places than
		// the asset's: StringFixed would have rounded it silently.
		back, err := domain.ParsePrice(s, a.PriceDecimals)
		if err != nil || !back.Equal(p) {
			return nil, fmt.Errorf("%w %s: %s price %s: want a positive price with at most %d decimal places",
				ErrInvalidPrices, date, isin, p, a.PriceDecimals)
		}
		f.Prices[string(isin)] = s
	}
	return f, nil
}

// ParsePriceFeed is the prices of a feed message that must be for date.
// Every price of a catalogue asset must parse with the asset's decimals: a
// feed with a malformed price is refused whole, since it cannot be known
// what else is wrong with it. Assets outside the catalogue are skipped and
// returned in ignored (the fund managers' feed may price funds ACME does not
// offer).
func ParsePriceFeed(cat *domain.Catalogue, date domain.Date, f *pb.PriceFeed) (prices map[domain.ISIN]domain.Price, ignored []string, err error) {
	if f.GetDate() != date.String() {
		return nil, nil, fmt.Errorf("%w: feed on %s says it is for %q", ErrInvalidPrices, date, f.GetDate())
	}
	prices = make(map[domain.ISIN]domain.Price, len(f.GetPrices()))
	for _, k := range slices.Sorted(maps.Keys(f.GetPrices())) {
		a, ok := cat.Asset(domain.ISIN(k))
		if !ok {
			ignored = append(ignored, k)
			continue
		}
		p, err := domain.ParsePrice(f.GetPrices()[k], a.PriceDecimals)
		if err != nil {
			return nil, nil, fmt.Errorf("%w %s: %s: %w", ErrInvalidPrices, date, k, err)
		}
		prices[a.ISIN] = p
	}
	return prices, ignored, nil
}
