package platform

import (
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/history"
)

// TestOpenHistoryDropsAnotherLayout: a node's history written by a build
// of another key layout is dropped and opened empty (the catch-up before
// joining projects it again); a directory that is not a history at all is
// still refused, not removed.
func TestOpenHistoryDropsAnotherLayout(t *testing.T) {
	opts := HistoryOptions(domain.DefaultCatalogue(), slog.New(slog.DiscardHandler), nil)
	writeDB := func(dir string, kvs ...string) {
		db, err := pebble.Open(dir, &pebble.Options{})
		require.NoError(t, err)
		for i := 0; i+1 < len(kvs); i += 2 {
			require.NoError(t, db.Set([]byte(kvs[i]), []byte(kvs[i+1]), pebble.Sync))
		}
		require.NoError(t, db.Close())
	}

	old := t.TempDir()
	writeDB(old, "v", "\x01", "m\x00M1\x00", "an old build's pot")
	_, err := history.Open(old, opts)
	require.ErrorIs(t, err, history.ErrLayout, "an older layout, opened as it is")
	s, err := openHistory(old, opts, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	version, _, err := s.Projected("M1")
	require.NoError(t, err)
	require.Zero(t, version, "the old store's pot is gone")
	require.NoError(t, s.Close())
	s, err = history.Open(old, opts)
	require.NoError(t, err, "the new store is of this build's layout")
	require.NoError(t, s.Close())

	other := t.TempDir()
	writeDB(other, "some", "thing else")
	_, err = openHistory(other, opts, slog.New(slog.DiscardHandler))
	require.Error(t, err)
	require.NotErrorIs(t, err, history.ErrLayout)
	db, err := pebble.Open(other, &pebble.Options{})
	require.NoError(t, err)
	v, closer, err := db.Get([]byte("some"))
	require.NoError(t, err, "a database that is no history is left alone")
	require.Equal(t, "thing else", string(v))
	require.NoError(t, closer.Close())
	require.NoError(t, db.Close())
}

// renderedOrderOfLayout is the platform's rendering of one closed order
// under each history layout since closed orders were stored rendered.
var renderedOrderOfLayout = map[byte]string{
	2: `{"id":"M1-2","type":"buy","status":"settled","dealingDate":"2026-11-23","createdAt":"2026-11-23T09:15:00Z","movementId":"M1-1",` +
		`"trades":[{"id":"M1-3","asset":"GB00BD8R3K42","side":"buy","amount":"100.00","status":"settled","executedUnits":"36.2312",` +
		`"price":"2.760000","cash":"99.99","settlementDate":"2026-11-25","batchId":"2026-11-23-GB00BD8R3K42"}],` +
		`"contractNotes":[{"tradeId":"M1-3","dealingDate":"2026-11-23","asset":"GB00BD8R3K42","side":"buy","units":"36.2312",` +
		`"unitPrice":"2.760000","consideration":"99.99","settlementDate":"2026-11-25","batchId":"2026-11-23-GB00BD8R3K42"}]}`,
}

// TestRenderedOrderIsPinnedToTheLayout: the history stores closed orders
// rendered as the API's JSON, so a change to that JSON must come with a new
// history.LayoutVersion (nodes then project their stores again, rather than
// serve old orders in the old form). Changing the JSON fails this test until
// the version is bumped and the new rendering added above.
func TestRenderedOrderIsPinnedToTheLayout(t *testing.T) {
	day := domain.MustDate("2026-11-23")
	trade := domain.NewTrade("M1-2", domain.TradeSpec{ID: "M1-3", Asset: "GB00BD8R3K42", Side: domain.Buy, Cash: domain.MustMoney("100.00")})
	trade.Status = domain.TradeSettledStatus
	trade.Execution = &domain.Execution{DealingDate: day, Units: domain.MustUnits("36.2312"), Price: domain.MustPrice("2.76"),
		Cash: domain.MustMoney("99.99"), SettlementDate: day.AddDays(2), BatchID: "2026-11-23-GB00BD8R3K42", ExecutionID: "X1",
		ExecutedAt: day.At(16, 30, time.UTC)}
	o := &domain.Order{ID: "M1-2", Type: domain.OrderBuy, MovementID: "M1-1", CreatedAt: day.At(9, 15, time.UTC),
		DealingDate: day, OriginalDealingDate: day, Trades: []*domain.Trade{trade}}
	render := HistoryOptions(domain.DefaultCatalogue(), slog.New(slog.DiscardHandler), nil).RenderClosedOrder
	want, ok := renderedOrderOfLayout[history.LayoutVersion]
	require.True(t, ok, "no rendering recorded for history layout %d", history.LayoutVersion)
	require.Equal(t, want, string(render(nil, o)),
		"a closed order renders otherwise than history layout %d did: bump history.LayoutVersion and record the new rendering", history.LayoutVersion)
}
