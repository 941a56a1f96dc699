package domain

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// The rounding rules of docs/domain.md, one function each. They are the written
// allocation policy of the aggregation (FCA COBS 11.3.7), fixed before
// dealing: every trade in a batch gets the same price and these rules.
//
// Division is done with QuoRem, which is exact: decimal.Div rounds at 16
// places, and a quotient just under a boundary would then floor the wrong
// way (and a buy could cost more than its cash).

// BuyByCash is the allocation of a buy of cash at price:
// units = floor(cash / price, unitDecimals), cost = roundHalfEven(units × price, 2).
// cost ≤ cash always; cash − cost goes back to the pot.
func BuyByCash(cash Money, price Price, unitDecimals int32) (units Units, cost Money) {
	assertPositivePrice(price)
	if cash.Sign() < 0 {
		panic(fmt.Sprintf("domain: BuyByCash of negative cash %s", cash))
	}
	q, _ := cash.d.QuoRem(price.d, unitDecimals)
	units = Units{q}
	cost = SellProceeds(units, price) // the same rounding of units × price
	if cost.Cmp(cash) > 0 {
		panic(fmt.Sprintf("domain: BuyByCash(%s, %s, %d) costs %s, more than its cash", cash, price, unitDecimals, cost))
	}
	return units, cost
}

// SellProceeds is the cash for units sold (or bought) at price:
// roundHalfEven(units × price, 2).
func SellProceeds(units Units, price Price) Money {
	return moneyRounded(units.d.Mul(price.d).RoundBank(CashDecimals))
}

// SellByCashUnits is the number of units to sell to raise cash at price:
// ceil(cash / price, unitDecimals), capped at held (then the proceeds may fall
// short of cash, and a withdrawal pays what it raised).
func SellByCashUnits(cash Money, price Price, held Units, unitDecimals int32) Units {
	assertPositivePrice(price)
	q, r := cash.d.QuoRem(price.d, unitDecimals)
	if r.Sign() > 0 {
		q = q.Add(decimal.New(1, -unitDecimals))
	}
	return minUnits(Units{q}, held)
}

// SellByPercentUnits is the number of units in pct percent of held:
// floor(held × pct / 100, unitDecimals). 100% is exactly held.
func SellByPercentUnits(held Units, pct Percent, unitDecimals int32) Units {
	q, _ := held.d.Mul(pct.d).QuoRem(decimal.NewFromInt(100), unitDecimals)
	u := Units{q}
	if u.Cmp(held) > 0 {
		panic(fmt.Sprintf("domain: %s%% of %s is %s, more than held", pct, held, u))
	}
	return u
}

// NetOrderCash is the cash the custodian settles for a net order of
// netUnits (either sign) at price: roundHalfEven(|netUnits| × price, 2).
func NetOrderCash(netUnits Units, price Price) Money {
	return SellProceeds(netUnits.Abs(), price)
}

// ProceedsLinkedBuyCash is the cash of a buy funded by a share of a same-day
// sale: floor(fraction × proceeds, 2) + fixed. Flooring means the shares of
// one sale never add up to more than the sale raised.
func ProceedsLinkedBuyCash(fraction Weight, proceeds Money, fixed Money) Money {
	share := moneyRounded(fraction.d.Mul(proceeds.d).RoundFloor(CashDecimals))
	return share.Add(fixed)
}

// HouseRoundingResidual is what the house rounding account of one asset and
// dealing day takes: the cash the pots paid for their buys, less the cash
// credited to the pots for their sells, less the cash the custodian settles
// for the net order (paid by ACME for a net buy, received for a net sell).
// Positive: the house keeps pennies; negative: the house pays them.
//
// netUnits is Σ buy units − Σ sell units of the day, so the units of pots
// and custodian agree exactly and only cash has a residual.
func HouseRoundingResidual(potBuyCosts, potSellProceeds Money, netUnits Units, netCash Money) Money {
	custodianFlow := netCash // ACME pays the custodian for a net buy
	if netUnits.Sign() < 0 {
		custodianFlow = netCash.Neg() // and receives from it for a net sell
	}
	return potBuyCosts.Sub(potSellProceeds).Sub(custodianFlow)
}

func assertPositivePrice(p Price) {
	if p.d.Sign() <= 0 {
		panic(fmt.Sprintf("domain: non-positive price %s", p.d))
	}
}
