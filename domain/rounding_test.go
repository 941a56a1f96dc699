package domain

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

// TestRoundingRules runs the rounding cases in testdata/rounding: each rule of
// docs/domain.md with its edge cases, readable as data (rewrite with -rewrite).
func TestRoundingRules(t *testing.T) {
	datadriven.RunTest(t, "testdata/rounding", func(t *testing.T, d *datadriven.TestData) string {
		arg := func(key string) string {
			var s string
			d.ScanArgs(t, key, &s)
			return s
		}
		ud := func() int32 {
			if !d.HasArg("ud") {
				return UnitDecimalsDefault
			}
			var n int
			d.ScanArgs(t, "ud", &n)
			return int32(n)
		}
		money := func(key string) Money { return mustMoneyT(t, arg(key)) }
		price := func() Price { return MustPrice(arg("price")) }
		units := func(key string) Units { return MustUnits(arg(key)) }

		switch d.Cmd {
		case "buy":
			cash := money("cash")
			u, cost := BuyByCash(cash, price(), ud())
			return fmt.Sprintf("units=%s cost=%s change=%s\n", u.StringFixed(ud()), cost, cash.Sub(cost))
		case "sell":
			u := units("units")
			return fmt.Sprintf("proceeds=%s\n", SellProceeds(u, price()))
		case "sell-by-cash":
			cash := money("cash")
			u := SellByCashUnits(cash, price(), units("held"), ud())
			p := SellProceeds(u, price())
			return fmt.Sprintf("units=%s proceeds=%s short=%s\n", u.StringFixed(ud()), p, maxMoney(cash.Sub(p), Money{}))
		case "sell-by-percent":
			u := SellByPercentUnits(units("held"), MustPercent(arg("percent")), ud())
			return fmt.Sprintf("units=%s\n", u.StringFixed(ud()))
		case "net-cash":
			return fmt.Sprintf("cash=%s\n", NetOrderCash(units("net"), price()))
		case "linked-buy-cash":
			fixed := Money{}
			if d.HasArg("fixed") {
				fixed = money("fixed")
			}
			return fmt.Sprintf("cash=%s\n", ProceedsLinkedBuyCash(MustWeight(arg("fraction")), money("proceeds"), fixed))
		case "residual":
			// buys and sells are lists of cash (buys) and units (sells) at one price.
			p := price()
			var buyCost, sellProceeds Money
			var net Units
			var buys, sells []string
			if a, ok := d.Arg("buys"); ok {
				buys = a.Vals
			}
			if a, ok := d.Arg("sells"); ok {
				sells = a.Vals
			}
			for _, b := range buys {
				u, c := BuyByCash(mustMoneyT(t, b), p, ud())
				buyCost, net = buyCost.Add(c), net.Add(u)
			}
			for _, s := range sells {
				u := MustUnits(s)
				sellProceeds, net = sellProceeds.Add(SellProceeds(u, p)), net.Sub(u)
			}
			netCash := NetOrderCash(net, p)
			return fmt.Sprintf("net=%s cash=%s pots-paid=%s pots-received=%s house=%s\n",
				net.StringFixed(ud()), netCash, buyCost, sellProceeds, HouseRoundingResidual(buyCost, sellProceeds, net, netCash))
		default:
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		}
	})
}

func mustMoneyT(t *testing.T, s string) Money {
	t.Helper()
	d, err := decimal.NewFromString(s)
	require.NoError(t, err, "bad money literal %q", s)
	m, err := MoneyFromDecimal(d)
	require.NoError(t, err, "bad money literal %q", s)
	return m
}
