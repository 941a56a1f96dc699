package load

import (
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A withdrawal pays what was asked, unless its sells by cash raised less
// than they were to: then the cash taken at once plus what they raised.
func TestWithdrawalOwed(t *testing.T) {
	type note struct{ side, consideration string }
	sells := func(amounts []string, notes ...note) []orderJSON {
		o := orderJSON{ID: "M-2", Type: "sell", MovementID: "M-1"}
		for _, a := range amounts {
			o.Trades = append(o.Trades, struct {
				Asset  string `json:"asset"`
				Side   string `json:"side"`
				Amount string `json:"amount"`
			}{Asset: "GB00BN7Q2L69", Side: "sell", Amount: a})
		}
		for _, n := range notes {
			o.ContractNotes = append(o.ContractNotes, struct {
				TradeID       string `json:"tradeId"`
				Asset         string `json:"asset"`
				Side          string `json:"side"`
				Units         string `json:"units"`
				Consideration string `json:"consideration"`
			}{Side: n.side, Consideration: n.consideration})
		}
		return []orderJSON{o}
	}
	for _, tc := range []struct {
		name   string
		asked  string
		orders []orderJSON
		want   string
	}{
		{"from cash alone", "50.00", nil, "50.00"},
		{"sells raised what they were to", "100.00", sells([]string{"80.00"}, note{"sell", "80.00"}), "100.00"},
		{"sells raised more (units rounded up)", "100.00", sells([]string{"80.00"}, note{"sell", "80.04"}), "100.00"},
		// The load run's first 200,000-member month: £99.10 asked, £98.98 paid.
		{"a capped sell raised less", "99.10", sells([]string{"99.10"}, note{"sell", "98.98"}), "98.98"},
		{"two sells, one short", "90.00", sells([]string{"40.00", "30.00"}, note{"sell", "40.00"}, note{"sell", "29.50"}), "89.50"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := withdrawalOwed(decimal.RequireFromString(tc.asked), tc.orders)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got.StringFixed(2))
		})
	}
	_, err := withdrawalOwed(decimal.RequireFromString("1.00"), sells([]string{"x"}))
	assert.ErrorContains(t, err, `amount "x"`)
}
