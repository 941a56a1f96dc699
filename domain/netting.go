package domain

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Netting and allocation of one dealing day: member and rebalance trades are
// netted per asset into one custodian order, and every trade gets its units
// and cash at the day's price by the rounding rules. Units are conserved
// exactly by construction (the net order is the sum of the trades' units);
// the cash difference between the net order and the trades is the house
// rounding residual (docs/domain.md invariant 5).

// AllocateTrade is a trade's allocation at the day's price: a sell's units
// (its units, or by cash capped at its reservation) and proceeds; a buy's
// units and cost from its cash, plus for a linked buy its shares of its sells'
// proceeds, which proceedsOf gives. The pot (to verify) and the aggregator
// (to compute) both use it, so they cannot disagree.
func AllocateTrade(spec TradeSpec, price Price, unitDecimals int32, proceedsOf func(sellTradeID string) (Money, bool)) (Units, Money, error) {
	switch spec.Side {
	case Sell:
		units := spec.Units
		if units.IsZero() {
			units = SellByCashUnits(spec.Cash, price, spec.ReservedUnits, unitDecimals)
		}
		return units, SellProceeds(units, price), nil
	case Buy:
		funding := spec.Cash
		for _, share := range spec.Funding {
			proceeds, ok := proceedsOf(share.SellTradeID)
			if !ok {
				return Units{}, Money{}, fmt.Errorf("linked buy %s: sell %s has no proceeds yet", spec.ID, share.SellTradeID)
			}
			funding = funding.Add(ProceedsLinkedBuyCash(share.Fraction, proceeds, Money{}))
		}
		units, cost := BuyByCash(funding, price, unitDecimals)
		return units, cost, nil
	}
	return Units{}, Money{}, fmt.Errorf("trade %s: unknown side %d", spec.ID, spec.Side)
}

// NewTrade is an accepted trade of order orderID on terms spec.
func NewTrade(orderID string, spec TradeSpec) *Trade {
	return &Trade{ID: spec.ID, OrderID: orderID, Asset: spec.Asset, Side: spec.Side, Cash: spec.Cash, Units: spec.Units,
		Funding: spec.Funding, ReservedCash: spec.ReservedCash, ReservedUnits: spec.ReservedUnits, Status: TradeAccepted}
}

// Spec is the trade's terms as accepted.
func (t *Trade) Spec() TradeSpec {
	return TradeSpec{ID: t.ID, Asset: t.Asset, Side: t.Side, Cash: t.Cash, Units: t.Units, Funding: t.Funding,
		ReservedCash: t.ReservedCash, ReservedUnits: t.ReservedUnits}
}

// DayTrade is a trade of a dealing day as an aggregator knows it from the
// feed: whose it is and its terms.
type DayTrade struct {
	MemberID string
	OrderID  string
	TradeSpec
}

// Allocation is a trade's share of the day: units and cash at Price.
type Allocation struct {
	DayTrade
	Units Units
	Cash  Money
	Price Price
}

// AssetDay is the netting of one asset on one dealing day, over some trades
// (one pot group's, or, summed with SumAssetDays, the whole day's).
type AssetDay struct {
	Asset ISIN
	Price Price
	// Trades counts the trades netted.
	Trades        int
	BuyUnits      Units // Σ units of buys
	SellUnits     Units // Σ units of sells
	PotBuyCost    Money // Σ what the buys cost the pots
	PotSellCash   Money // Σ what the sells credited the pots
	ManifestLines []string
}

// NetUnits is Σ buy units − Σ sell units: positive is a net buy.
func (a AssetDay) NetUnits() Units { return a.BuyUnits.Sub(a.SellUnits) }

// NetSide is the custodian order's side, 0 when buys and sells cancel out.
func (a AssetDay) NetSide() Side {
	switch a.NetUnits().Sign() {
	case 1:
		return Buy
	case -1:
		return Sell
	}
	return 0
}

// NetCash is the cash the custodian settles for the net order.
func (a AssetDay) NetCash() Money { return NetOrderCash(a.NetUnits(), a.Price) }

// HouseResidual is the house rounding account's take for the asset and day.
func (a AssetDay) HouseResidual() Money {
	return HouseRoundingResidual(a.PotBuyCost, a.PotSellCash, a.NetUnits(), a.NetCash())
}

// AllocateDay allocates a dealing day's trades (of any set of pots, each
// pot's trades all present) at the day's prices, and nets them per asset. It
// refuses a trade with no price for its asset, or a linked buy whose sell is
// not among the trades.
func AllocateDay(trades []DayTrade, prices map[ISIN]Price, unitDecimals func(ISIN) int32) ([]Allocation, map[ISIN]*AssetDay, error) {
	// Sells first, so linked buys find their proceeds; then by trade id, so
	// the result does not depend on the order trades arrived in.
	sorted := slices.Clone(trades)
	slices.SortFunc(sorted, func(a, b DayTrade) int {
		if a.Side != b.Side {
			return cmp.Compare(b.Side, a.Side) // Sell (2) before Buy (1)
		}
		return strings.Compare(a.ID, b.ID)
	})
	proceeds := make(map[string]Money)
	proceedsOf := func(id string) (Money, bool) { m, ok := proceeds[id]; return m, ok }
	allocs := make([]Allocation, 0, len(sorted))
	days := map[ISIN]*AssetDay{}
	for _, t := range sorted {
		price, ok := prices[t.Asset]
		if !ok {
			return nil, nil, fmt.Errorf("domain: no price for %s (trade %s)", t.Asset, t.ID)
		}
		units, cash, err := AllocateTrade(t.TradeSpec, price, unitDecimals(t.Asset), proceedsOf)
		if err != nil {
			return nil, nil, fmt.Errorf("domain: %w", err)
		}
		if t.Side == Sell {
			proceeds[t.ID] = cash
		}
		allocs = append(allocs, Allocation{DayTrade: t, Units: units, Cash: cash, Price: price})
		day := days[t.Asset]
		if day == nil {
			day = &AssetDay{Asset: t.Asset, Price: price}
			days[t.Asset] = day
		}
		day.Trades++
		if t.Side == Buy {
			day.BuyUnits, day.PotBuyCost = day.BuyUnits.Add(units), day.PotBuyCost.Add(cash)
		} else {
			day.SellUnits, day.PotSellCash = day.SellUnits.Add(units), day.PotSellCash.Add(cash)
		}
		day.ManifestLines = append(day.ManifestLines, ManifestLine(t.ID, t.Side, units, cash))
	}
	for _, day := range days {
		slices.Sort(day.ManifestLines)
	}
	return allocs, days, nil
}

// SumAssetDays adds up the parts of one asset's day (one per pot group) into
// the whole day. Rounding of the net order happens once, on the sum: that is
// why the residual is the asset book's, not a group's.
func SumAssetDays(parts []AssetDay) (AssetDay, error) {
	if len(parts) == 0 {
		return AssetDay{}, fmt.Errorf("domain: no parts to sum")
	}
	sum := AssetDay{Asset: parts[0].Asset, Price: parts[0].Price}
	for _, p := range parts {
		if p.Asset != sum.Asset || !p.Price.Equal(sum.Price) {
			return AssetDay{}, fmt.Errorf("domain: summing %s at %s with %s at %s", p.Asset, p.Price, sum.Asset, sum.Price)
		}
		sum.Trades += p.Trades
		sum.BuyUnits, sum.SellUnits = sum.BuyUnits.Add(p.BuyUnits), sum.SellUnits.Add(p.SellUnits)
		sum.PotBuyCost, sum.PotSellCash = sum.PotBuyCost.Add(p.PotBuyCost), sum.PotSellCash.Add(p.PotSellCash)
	}
	return sum, nil
}

// ManifestLine is one trade's line in a batch manifest: its id, side, units
// and cash, so the manifest shows every trade got the same price.
func ManifestLine(tradeID string, side Side, units Units, cash Money) string {
	return fmt.Sprintf("%s %s %s %s", tradeID, side, units, cash)
}

// ManifestHash is the SHA-256 of a manifest's lines (sorted, one per line),
// in hex. A batch split across pot groups is hashed as the lines of its
// groups' hashes ("group <n> <hash>"), in group order.
func ManifestHash(lines []string) string {
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// BatchID names the batch of one asset on one dealing day; it is also the
// custodian order's client order id (FIX ClOrdID): unique per day and asset.
func BatchID(day Date, asset ISIN) string { return day.String() + "-" + string(asset) }
