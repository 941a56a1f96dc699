package domain

import (
	"slices"

	"github.com/shopspring/decimal"
)

// RebalanceTradeMin is the smallest trade a rebalance places: below it the
// dealing costs more than the drift does harm, and a pot would otherwise
// trade pennies of every asset whenever one asset leaves its band.
var RebalanceTradeMin = MustMoney("1.00")

// AssetAmount is an amount of cash for one asset: a buy to place, a sum to
// raise.
type AssetAmount struct {
	Asset  ISIN
	Amount Money
}

// Position is what a pot holds of one asset, for the rebalancing maths.
type Position struct {
	Units     Units // settled + pending: what the pot owns
	Available Units // settled and not reserved: what it may sell now
	Price     Price // zero when unknown
}

// Value is Units at Price, rounded to pennies (zero without a price).
func (p Position) Value() Money {
	if p.Price.IsZero() {
		return Money{}
	}
	return SellProceeds(p.Units, p.Price)
}

// AvailableValue is Available at Price, rounded to pennies.
func (p Position) AvailableValue() Money {
	if p.Price.IsZero() {
		return Money{}
	}
	return SellProceeds(p.Available, p.Price)
}

// Mix is a pot's positions and cash, valued: the input of the rebalancing
// maths.
type Mix struct {
	Cash      Money // cash counted in the mix (available + pending)
	Available Money // cash free to spend now
	Positions map[ISIN]Position
}

// Total is the mix's value: cash plus every position's value.
func (m Mix) Total() Money {
	t := m.Cash
	for _, a := range m.assets() {
		t = t.Add(m.Positions[a].Value())
	}
	return t
}

// assets lists the mix's assets in a fixed order, so that every calculation
// (and the pennies of its rounding) is deterministic.
func (m Mix) assets() []ISIN {
	out := make([]ISIN, 0, len(m.Positions))
	for a := range m.Positions {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// mulDivFloor is floor(a × b / c, places) for a, b ≥ 0 and c > 0, exactly.
func mulDivFloor(a, b, c decimal.Decimal, places int32) decimal.Decimal {
	q, _ := a.Mul(b).QuoRem(c, places)
	return q
}

// InvestContribution splits a contribution of amount into buys for a pot
// with profile: the profile's cash weight of the contribution stays cash;
// the rest goes first to the assets most below their target (in proportion to
// how far below, measured against the value after the contribution), and
// what is left after every deficit is filled, by the profile's weights.
// Amounts are floored to pennies; the pennies left over stay cash.
func InvestContribution(profile RiskProfile, mix Mix, amount Money) []AssetAmount {
	after := mix.Total().Add(amount).d
	keep := mulDivFloor(amount.d, profile.Cash.d, decimal.NewFromInt(1), CashDecimals)
	invest := amount.d.Sub(keep)
	if invest.Sign() <= 0 {
		return nil
	}
	targets := profile.Assets()
	deficits := make([]decimal.Decimal, len(targets))
	var deficitSum decimal.Decimal
	for i, a := range targets {
		target := profile.Target(a).d.Mul(after).RoundFloor(CashDecimals)
		d := target.Sub(mix.Positions[a].Value().d)
		if d.Sign() > 0 {
			deficits[i] = d
			deficitSum = deficitSum.Add(d)
		}
	}
	assetWeight := decimal.NewFromInt(1).Sub(profile.Cash.d)
	out := make([]AssetAmount, 0, len(targets))
	for i, a := range targets {
		var x decimal.Decimal
		if deficitSum.Cmp(invest) >= 0 {
			if deficitSum.Sign() > 0 {
				x = mulDivFloor(invest, deficits[i], deficitSum, CashDecimals)
			}
		} else {
			rest := mulDivFloor(invest.Sub(deficitSum), profile.Target(a).d, assetWeight, CashDecimals)
			x = deficits[i].Add(rest)
		}
		if x.Sign() > 0 {
			out = append(out, AssetAmount{Asset: a, Amount: moneyRounded(x)})
		}
	}
	return out
}

// RaiseWithdrawal splits the sum to raise for a withdrawal into sells by
// cash. With a profile (not nil), the assets most above their target after
// the withdrawal (valued at totalAfter) are sold first; the rest, and all of
// it for a self-directed pot, pro rata to the value each asset has available.
// The amounts add up to exactly raise, none above an asset's available value;
// raise must not exceed the available value of all assets together.
func RaiseWithdrawal(profile *RiskProfile, mix Mix, totalAfter, raise Money) []AssetAmount {
	assets := mix.assets()
	room := make([]decimal.Decimal, len(assets)) // available value not yet used
	var roomSum decimal.Decimal
	for i, a := range assets {
		room[i] = mix.Positions[a].AvailableValue().d
		roomSum = roomSum.Add(room[i])
	}
	if raise.d.Cmp(roomSum) > 0 {
		panic("domain: RaiseWithdrawal asked for more than the pot has available")
	}
	amounts := make([]decimal.Decimal, len(assets))
	left := raise.d

	// First the excess over target, where there is a profile.
	if profile != nil {
		excess := make([]decimal.Decimal, len(assets))
		var excessSum decimal.Decimal
		for i, a := range assets {
			target := profile.Target(a).d.Mul(totalAfter.d).RoundFloor(CashDecimals)
			e := decimal.Min(mix.Positions[a].Value().d.Sub(target), room[i])
			if e.Sign() > 0 {
				excess[i] = e
				excessSum = excessSum.Add(e)
			}
		}
		take := decimal.Min(excessSum, left)
		if take.Sign() > 0 {
			for i := range assets {
				x := mulDivFloor(take, excess[i], excessSum, CashDecimals)
				amounts[i] = amounts[i].Add(x)
				room[i] = room[i].Sub(x)
				roomSum = roomSum.Sub(x)
				left = left.Sub(x)
			}
		}
	}
	// Then pro rata to what is available.
	if left.Sign() > 0 && roomSum.Sign() > 0 {
		share := left
		for i := range assets {
			x := mulDivFloor(share, room[i], roomSum, CashDecimals)
			amounts[i] = amounts[i].Add(x)
			room[i] = room[i].Sub(x)
			left = left.Sub(x)
		}
	}
	// The pennies that flooring left: one each to the assets with the most
	// room, in a fixed order.
	penny := decimal.New(1, -CashDecimals)
	for left.Sign() > 0 {
		best := -1
		for i := range assets {
			if room[i].Cmp(penny) >= 0 && (best < 0 || room[i].Cmp(room[best]) > 0) {
				best = i
			}
		}
		if best < 0 {
			panic("domain: RaiseWithdrawal has pennies left and no room")
		}
		amounts[best] = amounts[best].Add(penny)
		room[best] = room[best].Sub(penny)
		left = left.Sub(penny)
	}
	var out []AssetAmount
	for i, a := range assets {
		if amounts[i].Sign() > 0 {
			out = append(out, AssetAmount{Asset: a, Amount: moneyRounded(amounts[i])})
		}
	}
	return out
}

// Drift says whether a mix is out of its profile's bands, and which asset
// (or "cash") is furthest out.
type Drift struct {
	OutOfBand bool
	Worst     string // an ISIN, or "cash"
}

// CheckDrift compares every weight of the mix (each asset held or targeted,
// and cash) with profile's target and band. It is exact: a weight v/V is
// compared as |v − t·V| against min(absolute, relative·t)·V, with no
// division.
func CheckDrift(profile RiskProfile, mix Mix) Drift {
	total := mix.Total().d
	if total.Sign() <= 0 {
		return Drift{}
	}
	out := func(value, target decimal.Decimal) (bool, decimal.Decimal) {
		gap := value.Sub(target.Mul(total)).Abs()
		band := profile.Band.Tolerance(target).Mul(total)
		return gap.Cmp(band) > 0, gap.Sub(band)
	}
	var d Drift
	var worst decimal.Decimal
	consider := func(name string, value, target decimal.Decimal) {
		if o, by := out(value, target); o && (!d.OutOfBand || by.Cmp(worst) > 0) {
			d, worst = Drift{OutOfBand: true, Worst: name}, by
		}
	}
	assets := mix.assets()
	for _, a := range profile.Assets() {
		if _, ok := mix.Positions[a]; !ok {
			assets = append(assets, a)
		}
	}
	slices.Sort(assets)
	for _, a := range assets {
		consider(string(a), mix.Positions[a].Value().d, profile.Target(a).d)
	}
	consider("cash", mix.Cash.d, profile.Cash.d)
	return d
}

// RebalancePlan is the trades that bring a drifted pot back to its
// profile's mix, all dealt on one day: sells by units, and buys funded by
// fractions of the pooled proceeds of those sells (the same fraction of each
// sell) plus fixed cash the pot has available now. Whatever the next day's
// prices, the buys cannot spend more than the sells raise plus the fixed
// cash: fractions are floored and add up to at most 1.
type RebalancePlan struct {
	Sells []PlannedSell
	Buys  []PlannedBuy
}

// PlannedSell sells Units of Asset.
type PlannedSell struct {
	Asset ISIN
	Units Units
}

// PlannedBuy buys Asset with Fraction of each planned sell's proceeds plus
// FixedCash.
type PlannedBuy struct {
	Asset     ISIN
	Fraction  Weight
	FixedCash Money
}

// IsEmpty reports whether the plan has no trades.
func (p RebalancePlan) IsEmpty() bool { return len(p.Sells) == 0 && len(p.Buys) == 0 }

// PlanRebalance plans the trades that move mix to profile's targets at the
// mix's prices: overweight assets are sold down (only units available now),
// underweight ones bought, cash above its target invested; trades under
// RebalanceTradeMin are left out. unitDecimals gives each asset's precision.
// Every position targeted or held must have a price.
func PlanRebalance(profile RiskProfile, mix Mix, unitDecimals func(ISIN) int32) RebalancePlan {
	total := mix.Total().d
	var plan RebalancePlan
	if total.Sign() <= 0 {
		return plan
	}
	assets := mix.assets()
	for _, a := range profile.Assets() {
		if _, ok := mix.Positions[a]; !ok {
			assets = append(assets, a)
		}
	}
	slices.Sort(assets)

	type need struct {
		asset ISIN
		cash  decimal.Decimal
	}
	var needs []need
	var proceeds, needSum decimal.Decimal // estimated at today's prices
	for _, a := range assets {
		pos := mix.Positions[a]
		target := profile.Target(a).d.Mul(total)
		diff := target.Sub(pos.Value().d)
		switch {
		case diff.Sign() < 0:
			if pos.Price.IsZero() {
				continue
			}
			u, _ := diff.Neg().QuoRem(pos.Price.d, unitDecimals(a))
			units := minUnits(Units{u}, pos.Available)
			value := SellProceeds(units, pos.Price)
			if units.Sign() <= 0 || value.Cmp(RebalanceTradeMin) < 0 {
				continue
			}
			plan.Sells = append(plan.Sells, PlannedSell{Asset: a, Units: units})
			proceeds = proceeds.Add(value.d)
		case diff.Sign() > 0:
			cash := diff.RoundFloor(CashDecimals)
			if cash.Cmp(RebalanceTradeMin.d) < 0 {
				continue
			}
			needs = append(needs, need{a, cash})
			needSum = needSum.Add(cash)
		}
	}
	if needSum.Sign() == 0 {
		return plan
	}
	// Cash above its target funds buys at once, in proportion to their needs.
	cashTarget := profile.Cash.d.Mul(total)
	spare := decimal.Min(mix.Available.d, mix.Cash.d.Sub(cashTarget)).RoundFloor(CashDecimals)
	spare = decimal.Min(decimal.Max(spare, decimal.Zero), needSum)
	remaining := make([]decimal.Decimal, len(needs))
	fixed := make([]decimal.Decimal, len(needs))
	var remainingSum decimal.Decimal
	for i, n := range needs {
		fixed[i] = mulDivFloor(spare, n.cash, needSum, CashDecimals)
		remaining[i] = n.cash.Sub(fixed[i])
		remainingSum = remainingSum.Add(remaining[i])
	}
	// The rest from the pooled proceeds. Dividing by the larger of the
	// proceeds and the remaining need keeps the fractions' sum at most 1,
	// and leaves surplus proceeds as cash when cash is below its target.
	pool := decimal.Max(proceeds, remainingSum)
	for i, n := range needs {
		var f decimal.Decimal
		if proceeds.Sign() > 0 && pool.Sign() > 0 {
			f = mulDivFloor(remaining[i], decimal.NewFromInt(1), pool, WeightDecimals)
		}
		if f.Sign() == 0 && fixed[i].Cmp(RebalanceTradeMin.d) < 0 {
			continue
		}
		plan.Buys = append(plan.Buys, PlannedBuy{Asset: n.asset, Fraction: Weight{f}, FixedCash: moneyRounded(fixed[i])})
	}
	return plan
}
