package history

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
)

// TestOrderValue: an open order is stored decoded whatever the renderer; a
// closed one rendered only with a renderer; each value splits back to its
// parts, and a damaged value is an error, never a panic.
func TestOrderValue(t *testing.T) {
	trade := domain.NewTrade("M1-1", domain.TradeSpec{ID: "M1-2", Asset: "GB00BD8R3K42", Side: domain.Buy, Cash: domain.MustMoney("10.00")})
	open := &domain.Order{ID: "M1-1", Type: domain.OrderBuy, Trades: []*domain.Trade{trade}}
	settledTrade := *trade
	settledTrade.Status = domain.TradeSettledStatus
	closed := &domain.Order{ID: "M1-1", Type: domain.OrderBuy, Trades: []*domain.Trade{&settledTrade}}
	render := func(b []byte, o *domain.Order) []byte { return append(b, "view of "+o.ID...) }

	for _, c := range []struct {
		name         string
		order        *domain.Order
		render       ClosedOrderRenderer
		wantRendered bool
	}{
		{"open, with a renderer", open, render, false},
		{"closed, with a renderer", closed, render, true},
		{"closed, without one", closed, nil, false},
	} {
		v := encodeOrderValue(c.order, c.render)
		ov, err := splitOrderValue(v)
		require.NoError(t, err, c.name)
		require.Equal(t, c.wantRendered, ov.rendered, c.name)
		require.Equal(t, codec.EncodeOrder(c.order), ov.encoded, c.name)
		if c.wantRendered {
			require.Equal(t, "settled", string(ov.status), c.name)
			require.Equal(t, "view of M1-1", string(ov.view), c.name)
		}
		o, err := decodeOrderValue(v)
		require.NoError(t, err, c.name)
		require.Equal(t, c.order.ID, o.ID, c.name)
	}

	for name, v := range map[string][]byte{
		"empty":                      {},
		"an unknown tag":             {7, 1, 2},
		"no status length":           {orderRendered},
		"a status past the end":      {orderRendered, 9, 's'},
		"a view past the end":        {orderRendered, 1, 's', 200, 1, 'v'},
		"a length of ten bytes, all": {orderRendered, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	} {
		_, err := splitOrderValue(v)
		require.Error(t, err, name)
	}
}
