package custodian

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsstream"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/proto/pb"
)

// Prices of a date never change once published: the same prices again are
// a no-op, a different price is ErrPriceConflict, prices for more assets
// are merged into the date's feed; the feed reads back exactly.
func TestPublishPrices(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	day := domain.MustDate("2026-11-23")
	_, found, err := h.client.Prices(h.ctx, day)
	require.NoError(t, err)
	require.True(t, !found)

	h.publishPrices("2026-11-23", map[domain.ISIN]string{globalEquity: "2.125"})
	h.publishPrices("2026-11-23", map[domain.ISIN]string{globalEquity: "2.125000"}) // the same number
	err = h.client.PublishPrices(h.ctx, day, map[domain.ISIN]domain.Price{globalEquity: domain.MustPrice("2.126")})
	require.ErrorIs(t, err, ErrPriceConflict)
	h.publishPrices("2026-11-23", map[domain.ISIN]string{globalEquity: "2.125", property: "10.5"})

	got, found, err := h.client.Prices(h.ctx, day)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, 2, len(got))
	require.Equal(t, "2.125", got[globalEquity].String())
	require.Equal(t, "10.5", got[property].String())
	raw, err := h.client.pricesStream(h.ctx)
	require.NoError(t, err)
	msg, err := raw.GetLastMsgForSubject(h.ctx, PriceSubject(day))
	require.NoError(t, err)
	var f pb.PriceFeed
	require.NoError(t, proto.Unmarshal(msg.Data, &f))
	require.Equal(t, map[string]string{string(globalEquity): "2.125000", string(property): "10.5000"}, f.Prices)

	err = h.client.PublishPrices(h.ctx, day, map[domain.ISIN]domain.Price{property: domain.MustPrice("10.12345")})
	require.ErrorIs(t, err, ErrInvalidPrices, "more places than the asset's")
	err = h.client.PublishPrices(h.ctx, day, map[domain.ISIN]domain.Price{"GB0002634946": domain.MustPrice("1")})
	require.ErrorIs(t, err, ErrInvalidPrices, "not in the catalogue")
	require.ErrorIs(t, h.client.PublishPrices(h.ctx, day, nil), ErrInvalidPrices)
}

// EnsureStreams is idempotent and sets what the protocol relies on.
func TestEnsureStreams(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	require.NoError(t, h.client.EnsureStreams(h.ctx))
	require.NoError(t, EnsureStreams(h.ctx, h.client.js, 0))
	for _, want := range StreamConfigs(1) {
		s, err := h.client.js.Stream(h.ctx, want.Name)
		require.NoError(t, err)
		got := s.CachedInfo().Config
		require.Equal(t, want.Subjects, got.Subjects, want.Name)
		require.Equal(t, jetstream.FileStorage, got.Storage, want.Name)
		if want.Duplicates != 0 {
			require.Equal(t, want.Duplicates, got.Duplicates, want.Name)
		}
		require.Equal(t, want.MaxAge, got.MaxAge, want.Name)
		if want.MaxMsgsPerSubject != 0 {
			require.Equal(t, want.MaxMsgsPerSubject, got.MaxMsgsPerSubject, want.Name)
		}
		// Bounded by age, bytes and messages, as StreamConfigs says.
		require.True(t, got.MaxAge > 0 && got.MaxBytes > 0 && got.MaxMsgs > 0 && got.MaxMsgSize > 0,
			"%s is unbounded: age %s, bytes %d, msgs %d, msg size %d", want.Name, got.MaxAge, got.MaxBytes, got.MaxMsgs, got.MaxMsgSize)
		require.Equal(t, want.MaxBytes, got.MaxBytes, want.Name)
		require.Equal(t, want.MaxMsgs, got.MaxMsgs, want.Name)
		require.Equal(t, want.MaxMsgSize, got.MaxMsgSize, want.Name)
		require.Equal(t, want.Discard, got.Discard, want.Name)
		// The next start finds nothing to update.
		require.False(t, natsstream.Differs(got, want), "%s: settings differ after EnsureStreams: %+v", want.Name, got)
	}
	// Reports are refused rather than discarded unread (a discarded one
	// could not be sent again within the duplicate window); orders and
	// prices make room by dropping the oldest.
	discard := map[string]jetstream.DiscardPolicy{OrdersStream: jetstream.DiscardOld, ReportsStream: jetstream.DiscardNew, PricesStream: jetstream.DiscardOld}
	for _, cfg := range StreamConfigs(1) {
		require.Equal(t, discard[cfg.Name], cfg.Discard, cfg.Name)
	}
	require.ErrorIs(t, EnsureStreams(h.ctx, h.client.js, 9), ErrInvalidConfig)
}

// Validate reports a client configuration out of range; the defaults are
// valid.
func TestClientConfigValidate(t *testing.T) {
	var cc ClientConfig
	require.NoError(t, cc.EnsureDefaults().Validate())
	cc.ReportRetryIntervalMax = time.Millisecond
	require.ErrorIs(t, cc.Validate(), ErrInvalidConfig)
}

// NewOrder makes the order of a day's net units; ParseExecutionReport
// checks a report's arithmetic.
func TestNewOrderAndParseReport(t *testing.T) {
	cat := domain.DefaultCatalogue()
	day := domain.MustDate("2026-11-23")
	o, err := NewOrder(cat, day, globalBond, domain.MustUnits("-12.5"))
	require.NoError(t, err)
	require.Equal(t, &pb.CustodianOrder{ClOrdId: "2026-11-23-IE00BF4W7M71", DealingDate: "2026-11-23",
		Asset: string(globalBond), Side: pb.Side_SIDE_SELL, Units: "12.500"}, o)
	_, err = NewOrder(cat, day, globalBond, domain.MustUnits("0"))
	require.ErrorIs(t, err, ErrNothingToOrder)
	_, err = NewOrder(cat, day, globalBond, domain.MustUnits("1.0001"))
	require.ErrorIs(t, err, ErrInvalidOrder)

	r := &pb.ExecutionReport{ClOrdId: "2026-11-23-IE00BF4W7M71", OrderId: "C1", ExecutionId: "E1",
		Asset: string(globalBond), Side: pb.Side_SIDE_SELL, Units: "12.500", Price: "1.000001",
		Cash: "12.50", SettlementDate: "2026-11-27", DealingDate: "2026-11-23"}
	x, err := ParseExecutionReport(cat, r)
	require.NoError(t, err)
	require.Equal(t, domain.Sell, x.Side)
	r.Cash = "12.51"
	_, err = ParseExecutionReport(cat, r)
	require.ErrorIs(t, err, ErrInvalidReport)
	require.True(t, strings.Contains(err.Error(), "12.50"))

	// 0.001 units at 1.000001 cost 0.001000001: zero pennies, a valid execution.
	r.Units, r.Cash = "0.001", "0.00"
	_, err = ParseExecutionReport(cat, r)
	require.NoError(t, err)
	r.Cash = "-0.00"
	_, err = ParseExecutionReport(cat, r)
	require.ErrorIs(t, err, ErrInvalidReport)

	require.Equal(t, "2026-11-23-IE00BF4W7M71", OrderMsgID("2026-11-23-IE00BF4W7M71", 1))
	require.Equal(t, "2026-11-23-IE00BF4W7M71#7", OrderMsgID("2026-11-23-IE00BF4W7M71", 7))
	require.True(t, OrderMsgIDMatches("A#7", "A"))
	require.True(t, !OrderMsgIDMatches("A#1", "A"))
	require.True(t, !OrderMsgIDMatches("B", "A"))
	require.True(t, errors.Is(fmt.Errorf("x: %w", ErrInvalidOrder), ErrInvalidOrder))
}

// TestPriceFeedDeliversEachDayUntilHandled proves the price feed consumer
// hands every day's prices to its handler, again after the handler fails,
// and a consumer sharing the durable name later sees only what was not
// acknowledged.
func TestPriceFeedDeliversEachDayUntilHandled(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var mu sync.Mutex
	got := map[string]map[domain.ISIN]domain.Price{}
	failures := 0
	handle := func(ctx context.Context, date domain.Date, prices map[domain.ISIN]domain.Price) error {
		mu.Lock()
		defer mu.Unlock()
		if date.String() == "2026-11-24" && failures == 0 {
			failures++
			return errors.New("not yet")
		}
		got[date.String()] = prices
		return nil
	}
	stop, err := h.client.PriceFeed(h.ctx, "acme-prices", handle)
	require.NoError(t, err)
	h.publishPrices("2026-11-23", map[domain.ISIN]string{globalEquity: "2.000000"})
	h.publishPrices("2026-11-24", map[domain.ISIN]string{globalEquity: "2.100000"})
	testkit.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < 2 {
			return fmt.Errorf("prices of %d days handled", len(got))
		}
		return nil
	})
	stop()
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, failures)
	if p := got["2026-11-24"][globalEquity]; !p.Equal(domain.MustPrice("2.1")) {
		t.Fatalf("2026-11-24: %v", got["2026-11-24"])
	}
}

// TestPriceFeedHandlerPanicIsRedelivered proves a handler that panics does
// not end the process nor the consumer: the panic is counted and the day's
// prices come back, as after an error, until the handler takes them.
func TestPriceFeedHandlerPanicIsRedelivered(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	before := recovered.Count("custodian-consumer")
	var mu sync.Mutex
	deliveries, handled := 0, 0
	handle := func(ctx context.Context, date domain.Date, prices map[domain.ISIN]domain.Price) error {
		mu.Lock()
		defer mu.Unlock()
		deliveries++
		if deliveries == 1 {
			panic("test: the prices handler panics once")
		}
		handled++
		return nil
	}
	stop, err := h.client.PriceFeed(h.ctx, "acme-prices-panic", handle)
	require.NoError(t, err)
	defer stop()
	h.publishPrices("2026-11-23", map[domain.ISIN]string{globalEquity: "2.000000"})
	testkit.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if handled != 1 {
			return fmt.Errorf("%d deliveries, %d handled", deliveries, handled)
		}
		return nil
	})
	require.Equal(t, 1.0, recovered.Count("custodian-consumer")-before)
}
